/** The run list's filters: experiment, cluster and tag dropdowns fed by the server, a search box. */
import * as React from 'react';

import { ExperimentInfo, TagInfo } from '../api';

export interface Filters {
  experiment: string;
  cluster: string;
  /** `key` or `key:value`, as GET /runs takes it */
  tag: string;
  q: string;
  status: string | null;
}

export const NO_FILTERS: Filters = { experiment: '', cluster: '', tag: '', q: '', status: null };

export interface RunFiltersProps {
  filters: Filters;
  onChange: (f: Filters) => void;
  experiments: ExperimentInfo[];
  clusters: string[];
  tags: TagInfo[];
  grouped: boolean;
  onGrouped: (v: boolean) => void;
  /** the tag dropdown was opened: read the tags again */
  onOpenTags: () => void;
}

export function RunFilters(props: RunFiltersProps): JSX.Element {
  const { filters: f, onChange } = props;
  const [text, setText] = React.useState(f.q);
  // the search waits for a pause in typing: one request, not one per key
  React.useEffect(() => {
    if (text === f.q) return;
    const t = window.setTimeout(() => onChange({ ...f, q: text }), 300);
    return () => window.clearTimeout(t);
  }, [text]);
  const tagOptions: { value: string; label: string }[] = [];
  for (const t of props.tags) {
    tagOptions.push({ value: t.key, label: `${t.key} (${t.runs})` });
    for (const v of t.values ?? []) tagOptions.push({ value: `${t.key}:${v.value}`, label: `  ${t.key}=${v.value} (${v.runs})` });
  }
  return (
    <div className="bai-run-filters">
      <input className="bai-run-search" type="search" placeholder="Search id or experiment" value={text}
        onChange={e => setText(e.target.value)} />
      <select className="bai-filter-experiment" title="Experiment" value={f.experiment}
        onChange={e => onChange({ ...f, experiment: e.target.value })}>
        <option value="">all experiments</option>
        {props.experiments.map(x => <option key={x.name} value={x.name}>{x.name} ({x.runs})</option>)}
      </select>
      <select className="bai-filter-cluster" title="Cluster" value={f.cluster}
        onChange={e => onChange({ ...f, cluster: e.target.value })}>
        <option value="">all clusters</option>
        {props.clusters.map(c => <option key={c} value={c}>{c}</option>)}
      </select>
      <select className="bai-filter-tag" title="Tag" value={f.tag} onMouseDown={props.onOpenTags} onChange={e => onChange({ ...f, tag: e.target.value })}>
        <option value="">any tag</option>
        {tagOptions.map(o => <option key={o.value} value={o.value}>{o.label}</option>)}
      </select>
      <label className="bai-group-toggle">
        <input type="checkbox" checked={props.grouped} onChange={e => props.onGrouped(e.target.checked)} /> group by experiment
      </label>
    </div>
  );
}

/**
 * The runs section: status chips, filters and search (all answered by the server), pages read
 * with the opaque cursor ("Load more"), rows grouped by experiment under collapsible headers,
 * and a parent's children under it (read with parent= when expanded). A refresh (the events
 * stream said something changed) reads as many rows as are shown, keeping filters and pages.
 */
import * as React from 'react';

import { BatchAIClient, ExperimentInfo, RunQuery, RunRow, TagInfo } from '../api';
import { formatDuration, formatRelative, isActiveStatus, runElapsed, statusClass } from '../format';
import { Filters, NO_FILTERS, RunFilters } from './RunFilters';

export const PAGE = 50;
const MAX_LIMIT = 500;

export interface RunsProps {
  client: BatchAIClient;
  clusters: string[];
  tick: number;
  now: number;
  openRun: (id: string) => void;
  onError: (message: string | null) => void;
}

function query(f: Filters): RunQuery {
  return {
    experiment: f.experiment || undefined, cluster: f.cluster || undefined, tag: f.tag ? [f.tag] : undefined,
    q: f.q || undefined, status: f.status ? [f.status] : undefined
  };
}

/** `wanted` rows (at least one page) from the top, in as few requests as the limit allows. */
async function readRows(client: BatchAIClient, f: Filters, wanted: number) {
  let rows: RunRow[] = [];
  let cursor: string | null = null;
  let page = await client.runs({ ...query(f), limit: Math.min(MAX_LIMIT, Math.max(PAGE, wanted)) });
  for (;;) {
    rows = rows.concat(page.runs);
    cursor = page.next_cursor;
    if (!cursor || rows.length >= wanted) break;
    page = await client.runs({ ...query(f), cursor, limit: Math.min(MAX_LIMIT, wanted - rows.length) });
  }
  return { rows, cursor, counts: page.counts, total: page.total };
}

export function Runs(props: RunsProps): JSX.Element {
  const { client, tick, now, openRun } = props;
  const [filters, setFilters] = React.useState<Filters>(NO_FILTERS);
  const [rows, setRows] = React.useState<RunRow[]>([]);
  const [cursor, setCursor] = React.useState<string | null>(null);
  const [counts, setCounts] = React.useState<Record<string, number>>({});
  const [total, setTotal] = React.useState(0);
  const [experiments, setExperiments] = React.useState<ExperimentInfo[]>([]);
  const [tags, setTags] = React.useState<TagInfo[]>([]);
  const [grouped, setGrouped] = React.useState(true);
  const [collapsed, setCollapsed] = React.useState<Set<string>>(new Set());
  const [children, setChildren] = React.useState<Map<string, RunRow[]>>(new Map());
  const [loading, setLoading] = React.useState(false);
  const shown = React.useRef(0);
  const seq = React.useRef(0);
  const lastFilters = React.useRef(filters);
  const tagsRead = React.useRef(false);

  React.useEffect(() => {
    const mine = ++seq.current;
    const fresh = lastFilters.current !== filters;
    lastFilters.current = filters;
    const wanted = fresh ? PAGE : Math.max(PAGE, shown.current);
    void (async () => {
      try {
        const got = await readRows(client, filters, wanted);
        // the tags (a scan of every run's tags) are read when the panel opens and when their
        // dropdown is opened, not on each refresh; the experiments' counts are one indexed GROUP BY
        const [ex, tg] = await Promise.all([client.experiments(), tagsRead.current ? null : client.tags()]);
        const kids = new Map<string, RunRow[]>();
        for (const id of children.keys()) kids.set(id, (await client.children(id, { sort: 'created', limit: MAX_LIMIT })).runs);
        if (mine !== seq.current) return;
        shown.current = got.rows.length;
        setRows(got.rows); setCursor(got.cursor); setCounts(got.counts); setTotal(got.total);
        setExperiments(ex); setChildren(kids);
        if (tg) { tagsRead.current = true; setTags(tg); }
        props.onError(null);
      } catch (err) {
        if (mine === seq.current) props.onError((err as Error).message);
      }
    })();
  }, [tick, filters]);

  const loadMore = async () => {
    if (!cursor || loading) return;
    setLoading(true);
    const mine = seq.current;
    try {
      const page = await client.runs({ ...query(filters), cursor, limit: PAGE });
      if (mine !== seq.current) return;
      const next = rows.concat(page.runs);
      shown.current = next.length;
      setRows(next); setCursor(page.next_cursor); setCounts(page.counts); setTotal(page.total);
    } catch (err) {
      props.onError((err as Error).message);
    } finally {
      setLoading(false);
    }
  };

  const toggleKids = async (id: string) => {
    const next = new Map(children);
    if (next.has(id)) next.delete(id);
    else next.set(id, (await client.children(id, { sort: 'created', limit: MAX_LIMIT })).runs);
    setChildren(next);
  };

  const row = (r: RunRow, child = false): JSX.Element => (
    <React.Fragment key={r.id}>
      <div className={`bai-run-row${child ? ' bai-run-child' : ''}`} data-run-id={r.id} onClick={() => openRun(r.id)}>
        {r.children > 0 ? (
          <button className="bai-run-expand" aria-expanded={children.has(r.id)} title={`${r.children} child runs`}
            onClick={e => { e.stopPropagation(); void toggleKids(r.id); }}>{children.has(r.id) ? '▾' : '▸'} {r.children}</button>
        ) : <span className="bai-run-expand-space" />}
        <span className={statusClass(r.status)}>{r.status}</span>
        <span className="bai-run-id">{r.id}</span>
        {!grouped && <span className="bai-muted">{r.experiment}</span>}
        <span className="bai-run-elapsed">{isActiveStatus(r.status) || r.ended ? formatDuration(runElapsed(r, now)) : ''}</span>
        <span className="bai-muted">{formatRelative(r.created, now)}</span>
      </div>
      {children.get(r.id)?.map(k => row(k, true))}
    </React.Fragment>
  );

  const groups: [string, RunRow[]][] = [];
  if (grouped) {
    const at = new Map<string, RunRow[]>();
    for (const r of rows) {
      if (!at.has(r.experiment)) { at.set(r.experiment, []); groups.push([r.experiment, at.get(r.experiment)!]); }
      at.get(r.experiment)!.push(r);
    }
  }
  const allOf = (name: string) => experiments.find(e => e.name === name)?.runs;

  return (
    <div className="bai-runs">
      <div className="bai-chips">
        {Object.entries(counts).filter(([, n]) => n > 0).map(([s, n]) => (
          <button key={s} className={`${statusClass(s)} bai-chip${filters.status === s ? ' bai-chip-on' : ''}`} data-status={s}
            onClick={() => setFilters({ ...filters, status: filters.status === s ? null : s })}>{s} {n}</button>
        ))}
      </div>
      <RunFilters filters={filters} onChange={setFilters} experiments={experiments} clusters={props.clusters}
        tags={tags} grouped={grouped} onGrouped={setGrouped}
        onOpenTags={() => void client.tags().then(setTags, err => props.onError((err as Error).message))} />
      <div className="bai-run-list">
        {grouped ? groups.map(([name, members]) => (
          <div className="bai-run-group" data-experiment={name} key={name}>
            <div className="bai-run-group-head" aria-expanded={!collapsed.has(name)} onClick={() => {
              const next = new Set(collapsed);
              if (!next.delete(name)) next.add(name);
              setCollapsed(next);
            }}>
              {collapsed.has(name) ? '▸' : '▾'} <b>{name}</b>
              <span className="bai-muted"> {members.length}{allOf(name) !== undefined && !filtered(filters) ? ` of ${allOf(name)}` : ''}</span>
            </div>
            {!collapsed.has(name) && members.map(r => row(r))}
          </div>
        )) : rows.map(r => row(r))}
        {rows.length === 0 && <div className="bai-muted">No runs{filtered(filters) ? ' match these filters' : ' yet'}.</div>}
      </div>
      <div className="bai-run-more">
        <span className="bai-muted bai-run-shown">{rows.length} of {total}</span>
        {cursor && <button className="bai-run-load-more" disabled={loading} onClick={() => void loadMore()}>Load more</button>}
      </div>
    </div>
  );
}

function filtered(f: Filters): boolean {
  return !!(f.experiment || f.cluster || f.tag || f.q || f.status);
}

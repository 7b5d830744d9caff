/** The Children tab: the children's status counts as chips (a click filters), their table with
 * the parent's primary metric, and a click on a row opens that child's own run view. */
import * as React from 'react';

import type { BatchAIClient, RunDetails, RunRow } from '../api';
import { statusClass } from '../format';
import { shortNumber } from './chart';
import { formatDuration, isActive } from './fmt';
import { errorText, usePoll } from './hooks';

/** The most children one read shows (the route's largest page). */
export const CHILDREN_LIMIT = 500;

interface Props {
  client: BatchAIClient;
  parent: RunDetails;
  visible: boolean;
  openRun: (id: string) => void;
}

export function Children(props: Props): JSX.Element {
  const { client, parent, visible, openRun } = props;
  const [page, setPage] = React.useState<{ runs: RunRow[]; counts: Record<string, number> } | null>(null);
  const [filter, setFilter] = React.useState<string | null>(null);
  const [error, setError] = React.useState('');
  const live = isActive(parent.status) || !!page?.runs.some(r => isActive(r.status));
  usePoll(async () => {
    try {
      setPage(await client.children(parent.id, { limit: CHILDREN_LIMIT, sort: 'created' }));
      setError('');
    } catch (e) {
      setError(errorText(e));
    }
  }, 3000, visible && (page === null || live));
  if (!page) {
    return <div className="bai-children-empty">{error || 'loading…'}</div>;
  }
  if (page.runs.length === 0) {
    return <div className="bai-children-empty">This run has no child runs.</div>;
  }
  const sweep = parent.sweep;
  const metric = sweep?.primary_metric ?? null;
  const rows = filter ? page.runs.filter(r => r.status === filter) : page.runs;
  const statuses = Object.keys(page.counts).filter(s => page.counts[s] > 0);
  return (
    <div className="bai-children">
      {error ? <div className="bai-runview-error">{error}</div> : null}
      <div className="bai-chips bai-children-chips">
        {statuses.map(s => (
          <button key={s} className={`${statusClass(s)} bai-chip${filter === s ? ' bai-chip-on' : ''}`}
            data-status={s} onClick={() => setFilter(f => (f === s ? null : s))}>
            {s} {page.counts[s]}
          </button>
        ))}
      </div>
      <table className="bai-runview-children">
        <thead>
          <tr>
            <th>#</th><th>run id</th><th>status</th><th>duration</th>
            {metric ? <th className="bai-children-metric">{metric} ({sweep?.goal})</th> : null}
          </tr>
        </thead>
        <tbody>
          {rows.map(c => {
            const value = metric ? sweep?.values[c.id] : undefined;
            return (
              <tr key={c.id} data-run-id={c.id} className={sweep?.best === c.id ? 'bai-children-best' : ''}
                onClick={() => openRun(c.id)} title="open this run">
                <td>{c.number}</td><td>{c.id}</td>
                <td className={`bai-status-${c.status}`}>{c.status}</td>
                <td>{formatDuration(c.duration)}</td>
                {metric ? <td className="bai-children-value">{typeof value === 'number' ? shortNumber(value) : '—'}</td> : null}
              </tr>
            );
          })}
        </tbody>
      </table>
      {page.runs.length >= CHILDREN_LIMIT ? <div className="bai-children-more">the first {CHILDREN_LIMIT} children</div> : null}
    </div>
  );
}

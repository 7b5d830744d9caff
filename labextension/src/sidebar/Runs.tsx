/**
 * The runs section: status chips, filters and search (all answered by the server), pages read
 * with the opaque cursor ("Load more"), rows grouped by experiment under collapsible headers,
 * and a parent's children under it (read with parent= when expanded). A refresh (the events
 * stream said something changed) reads as many rows as are shown, keeping filters and pages.
 * The list is windowed (RunWindow: only the rows near the viewport are in the DOM) and its end
 * reads the next page; each row has a sparkline of its first scalar metric (`spark=auto`), read
 * again every SPARK_SECONDS for the active rows while the panel is shown.
 */
import * as React from 'react';

import { BatchAIClient, ExperimentInfo, RunQuery, RunRow, Spark, TagInfo } from '../api';
import { formatDuration, formatRelative, isActiveStatus, runElapsed, statusClass } from '../format';
import { Filters, NO_FILTERS, RunFilters } from './RunFilters';
import { RunWindow, WindowItem } from './RunWindow';
import { Sparkline } from './Sparkline';

export const PAGE = 50;
const MAX_LIMIT = 500;
const SPARK_SECONDS = 5;
/** the active statuses a run row can have (GET /runs accepts these) */
const LIVE_STATUSES = ['Queued', 'Preparing', 'Running', 'Finalizing', 'CancelRequested'];

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
    q: f.q || undefined, status: f.status ? [f.status] : undefined, spark: 'auto'
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
  const [sparks, setSparks] = React.useState<Map<string, Spark | null>>(new Map());
  const sparkRead = React.useRef(0);
  const loadingNow = React.useRef(false);

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
        for (const id of children.keys()) kids.set(id, (await client.children(id, { sort: 'created', limit: MAX_LIMIT, spark: 'auto' })).runs);
        if (mine !== seq.current) return;
        shown.current = got.rows.length;
        setRows(got.rows); setCursor(got.cursor); setCounts(got.counts); setTotal(got.total);
        setExperiments(ex); setChildren(kids); setSparks(new Map());
        if (tg) { tagsRead.current = true; setTags(tg); }
        props.onError(null);
      } catch (err) {
        if (mine === seq.current) props.onError((err as Error).message);
      }
    })();
  }, [tick, filters]);

  const loadMore = async () => {
    if (!cursor || loadingNow.current) return;
    loadingNow.current = true;
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
      loadingNow.current = false;
      setLoading(false);
    }
  };

  // metrics change no status, so no event says so: the active rows' sparklines are read again
  // (one request, the same filters and only active statuses) while `now` ticks, i.e. while shown
  React.useEffect(() => {
    if (now - sparkRead.current < SPARK_SECONDS) return;
    if (!rows.some(r => isActiveStatus(r.status))) return;
    const statuses = LIVE_STATUSES.filter(s => !filters.status || s === filters.status);
    if (statuses.length === 0) return;
    sparkRead.current = now;
    const mine = seq.current;
    void client.runs({ ...query(filters), status: statuses, fields: ['id', 'status'], limit: MAX_LIMIT }).then(page => {
      if (mine !== seq.current) return;
      setSparks(old => {
        const next = new Map(old);
        for (const r of page.runs) next.set(r.id, r.spark ?? null);
        return next;
      });
    }, () => undefined);
  }, [now]);

  const toggleKids = async (id: string) => {
    const next = new Map(children);
    if (next.has(id)) next.delete(id);
    else next.set(id, (await client.children(id, { sort: 'created', limit: MAX_LIMIT, spark: 'auto' })).runs);
    setChildren(next);
  };

  const row = (r: RunRow, child = false): JSX.Element => (
      <div className={`bai-run-row${child ? ' bai-run-child' : ''}`} data-run-id={r.id} onClick={() => openRun(r.id)}>
        {r.children > 0 ? (
          <button className="bai-run-expand" aria-expanded={children.has(r.id)} title={`${r.children} child runs`}
            onClick={e => { e.stopPropagation(); void toggleKids(r.id); }}>{children.has(r.id) ? '▾' : '▸'} {r.children}</button>
        ) : <span className="bai-run-expand-space" />}
        <span className={statusClass(r.status)}>{r.status}</span>
        <span className="bai-run-id">{r.id}</span>
        {!grouped && <span className="bai-muted">{r.experiment}</span>}
        <span className="bai-run-elapsed">{isActiveStatus(r.status) || r.ended ? formatDuration(runElapsed(r, now)) : ''}</span>
        <span className="bai-muted bai-run-created">{formatRelative(r.created, now)}</span>
        <Sparkline spark={sparks.has(r.id) ? sparks.get(r.id) : r.spark} />
      </div>
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
  const items: WindowItem[] = [];
  const addRun = (r: RunRow, group: string | null) => {
    items.push({ key: r.id, group, render: () => row(r) });
    for (const k of children.get(r.id) ?? []) items.push({ key: `${r.id}/${k.id}`, group, render: () => row(k, true) });
  };
  if (grouped) {
    for (const [name, members] of groups) {
      items.push({
        key: `head:${name}`, group: name, render: () => (
          <div className="bai-run-group-head" aria-expanded={!collapsed.has(name)} onClick={() => {
            const next = new Set(collapsed);
            if (!next.delete(name)) next.add(name);
            setCollapsed(next);
          }}>
            {collapsed.has(name) ? '▸' : '▾'} <b>{name}</b>
            <span className="bai-muted"> {members.length}{allOf(name) !== undefined && !filtered(filters) ? ` of ${allOf(name)}` : ''}</span>
          </div>
        )
      });
      if (!collapsed.has(name)) for (const r of members) addRun(r, name);
    }
  } else {
    for (const r of rows) addRun(r, null);
  }

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
      <RunWindow items={items} onNearEnd={() => void loadMore()}>
        {rows.length === 0 && <div className="bai-muted">No runs{filtered(filters) ? ' match these filters' : ' yet'}.</div>}
      </RunWindow>
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

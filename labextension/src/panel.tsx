/** The left-sidebar "Batch AI" panel: clusters, runs and schedules, live from the events stream. */
import * as React from 'react';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';

import { BatchAIClient, ClusterInfo, EventsClient, RunRow, ScheduleInfo } from './api';
import { formatDuration, formatRelative, isActiveStatus, runElapsed, statusClass } from './format';

export interface PanelOptions {
  client: BatchAIClient;
  events: EventsClient;
  openRun: (id: string) => void;
}

/** Polls and listens only while shown. */
export class BatchAIPanel extends ReactWidget {
  private shown = false;
  private listeners = new Set<(v: boolean) => void>();

  constructor(private readonly options: PanelOptions) {
    super();
    this.id = 'batchai-jupyter:panel';
    this.addClass('bai-panel');
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.setShown(true);
  }

  protected onBeforeHide(msg: Message): void {
    this.setShown(false);
    super.onBeforeHide(msg);
  }

  private setShown(v: boolean): void {
    this.shown = v;
    for (const l of this.listeners) l(v);
  }

  render(): JSX.Element {
    return <PanelBody {...this.options} subscribe={l => {
      this.listeners.add(l);
      l(this.shown || this.isVisible);
      return () => this.listeners.delete(l);
    }} />;
  }
}

function PanelBody(props: PanelOptions & { subscribe: (l: (v: boolean) => void) => () => void }): JSX.Element {
  const [visible, setVisible] = React.useState(false);
  const [runs, setRuns] = React.useState<RunRow[]>([]);
  const [counts, setCounts] = React.useState<Record<string, number>>({});
  const [filter, setFilter] = React.useState<string | null>(null);
  const [clusters, setClusters] = React.useState<ClusterInfo[]>([]);
  const [schedules, setSchedules] = React.useState<ScheduleInfo[]>([]);
  const [error, setError] = React.useState<string | null>(null);
  const [now, setNow] = React.useState(Date.now() / 1000);

  React.useEffect(() => props.subscribe(setVisible), []);

  const refresh = React.useCallback(async () => {
    try {
      const page = await props.client.runs({ status: filter ? [filter] : undefined, limit: 100 });
      setRuns(page.runs);
      setCounts(page.counts);
      setClusters(await props.client.clusters());
      setSchedules(await props.client.schedules().catch(() => []));
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    }
  }, [filter]);

  React.useEffect(() => {
    if (!visible) return;
    void refresh();
    let pending: number | null = null;
    const off = props.events.listen(() => {
      if (pending === null) pending = window.setTimeout(() => { pending = null; void refresh(); }, 100);
    });
    const tick = window.setInterval(() => setNow(Date.now() / 1000), 1000);
    return () => {
      off();
      window.clearInterval(tick);
      if (pending !== null) window.clearTimeout(pending);
    };
  }, [visible, refresh]);

  return (
    <div className="bai-panel-body">
      {error && <div className="bai-error">{error}</div>}
      <h3 className="bai-section-title">Clusters</h3>
      {clusters.map(c => (
        <div className="bai-cluster-card" key={c.name}>
          <b>{c.name}</b> <span className="bai-muted">{c.backend}</span>
          <div className="bai-chips">
            {(['idle', 'running', 'preparing', 'unusable'] as const).map(k => (
              <span key={k} className={`bai-chip bai-node-${k}`}>{k} {c.nodes[k]}</span>
            ))}
            <span className="bai-chip">GPUs {c.gpus.free}/{c.gpus.total}</span>
            <span className="bai-chip">queued {c.queued}</span>
          </div>
        </div>
      ))}
      <h3 className="bai-section-title">Runs</h3>
      <div className="bai-chips">
        {Object.entries(counts).filter(([, n]) => n > 0).map(([s, n]) => (
          <button key={s} className={`${statusClass(s)} bai-chip${filter === s ? ' bai-chip-on' : ''}`}
            onClick={() => setFilter(filter === s ? null : s)}>{s} {n}</button>
        ))}
      </div>
      <div className="bai-run-list">
        {runs.map(r => (
          <div className="bai-run-row" data-run-id={r.id} key={r.id} onClick={() => props.openRun(r.id)}>
            <span className={statusClass(r.status)}>{r.status}</span>
            <span className="bai-run-id">{r.id}</span>
            <span className="bai-muted">{r.experiment}</span>
            <span className="bai-run-elapsed">{isActiveStatus(r.status) || r.ended ? formatDuration(runElapsed(r, now)) : ''}</span>
            <span className="bai-muted">{formatRelative(r.created, now)}</span>
          </div>
        ))}
      </div>
      <h3 className="bai-section-title">Schedules</h3>
      {schedules.map(s => (
        <div className="bai-schedule-row" key={s.name}>
          <b>{s.name}</b> <span className="bai-muted">{s.cron ?? String(s.every ?? '')}</span>
          <span className="bai-muted"> next {s.next?.[0] ?? '—'}</span>
          <button onClick={() => void props.client.scheduleAction(s.name, s.state === 'enabled' ? 'disable' : 'enable').then(refresh)}>
            {s.state === 'enabled' ? 'Disable' : 'Enable'}
          </button>
          <button onClick={() => void props.client.scheduleAction(s.name, 'trigger').then(refresh)}>Trigger</button>
        </div>
      ))}
    </div>
  );
}

/** The left-sidebar "Batch AI" panel: clusters, runs and schedules, live from the events stream. */
import * as React from 'react';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';

import { BatchAIClient, ClusterInfo, EventsClient, ScheduleInfo } from './api';
import { Clusters } from './sidebar/Clusters';
import { Runs } from './sidebar/Runs';
import { Schedules } from './sidebar/Schedules';

export interface PanelOptions {
  client: BatchAIClient;
  events: EventsClient;
  openRun: (id: string) => void;
}

/** Reads and listens only while shown. */
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

/**
 * `tick` counts the reads: one when the panel is shown, one 100 ms after a burst of events while
 * it is; each section reads again when it changes (nothing polls).
 */
function PanelBody(props: PanelOptions & { subscribe: (l: (v: boolean) => void) => () => void }): JSX.Element {
  const [visible, setVisible] = React.useState(false);
  const [tick, setTick] = React.useState(0);
  const [clusters, setClusters] = React.useState<ClusterInfo[]>([]);
  const [schedules, setSchedules] = React.useState<ScheduleInfo[]>([]);
  const [error, setError] = React.useState<string | null>(null);
  const [runsError, setRunsError] = React.useState<string | null>(null);
  const [now, setNow] = React.useState(Date.now() / 1000);

  React.useEffect(() => props.subscribe(setVisible), []);
  const bump = React.useCallback(() => setTick(t => t + 1), []);

  React.useEffect(() => {
    if (!visible) return;
    bump();
    let pending: number | null = null;
    const off = props.events.listen(() => {
      if (pending === null) pending = window.setTimeout(() => { pending = null; bump(); }, 100);
    });
    const timer = window.setInterval(() => setNow(Date.now() / 1000), 1000);
    return () => {
      off();
      window.clearInterval(timer);
      if (pending !== null) window.clearTimeout(pending);
    };
  }, [visible]);

  React.useEffect(() => {
    if (tick === 0) return;
    let live = true;
    void (async () => {
      try {
        const c = await props.client.clusters();
        const s = await props.client.schedules().catch(() => []);
        if (!live) return;
        setClusters(c);
        setSchedules(s);
        setError(null);
      } catch (err) {
        if (live) setError((err as Error).message);
      }
    })();
    return () => { live = false; };
  }, [tick]);

  const clusterNames = React.useMemo(() => clusters.map(c => c.name), [clusters]);
  return (
    <div className="bai-panel-body">
      {(error || runsError) && <div className="bai-error">{error || runsError}</div>}
      <h3 className="bai-section-title">Clusters</h3>
      <Clusters client={props.client} clusters={clusters} tick={tick} openRun={props.openRun}
        onChanged={c => setClusters(all => all.map(x => (x.name === c.name ? c : x)))} />
      <h3 className="bai-section-title">Runs</h3>
      {tick > 0 && <Runs client={props.client} clusters={clusterNames} tick={tick} now={now} openRun={props.openRun}
        onError={setRunsError} />}
      <h3 className="bai-section-title">Schedules</h3>
      <Schedules client={props.client} schedules={schedules} refresh={bump} />
    </div>
  );
}

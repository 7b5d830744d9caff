/** The clusters section: one card per cluster, expanding to its nodes, with a min/max resize form. */
import * as React from 'react';

import { ApiError, BatchAIClient, ClusterInfo, NodeInfo } from '../api';

export interface ClustersProps {
  client: BatchAIClient;
  clusters: ClusterInfo[];
  /** bumped when the events stream says something changed (expanded cards read their nodes again) */
  tick: number;
  openRun: (id: string) => void;
  /** a card's new settings after a resize, shown before the next read */
  onChanged: (cluster: ClusterInfo) => void;
}

export function Clusters(props: ClustersProps): JSX.Element {
  return (
    <div className="bai-clusters">
      {props.clusters.map(c => <ClusterCard key={c.name} {...props} cluster={c} />)}
    </div>
  );
}

function ClusterCard(props: ClustersProps & { cluster: ClusterInfo }): JSX.Element {
  const { client, cluster: c, tick } = props;
  const [open, setOpen] = React.useState(false);
  const [nodes, setNodes] = React.useState<NodeInfo[] | null>(null);
  const [resizing, setResizing] = React.useState(false);
  const [error, setError] = React.useState<string | null>(null);

  React.useEffect(() => {
    if (!open) return;
    let live = true;
    client.nodes(c.name).then(n => { if (live) setNodes(n); }, err => { if (live) setError((err as Error).message); });
    return () => { live = false; };
  }, [open, tick, c.name]);

  return (
    <div className="bai-cluster-card" data-cluster={c.name}>
      <div className="bai-cluster-head">
        <button className="bai-cluster-expand" aria-expanded={open} title={open ? 'Hide nodes' : 'Show nodes'}
          onClick={() => setOpen(!open)}>{open ? '▾' : '▸'}</button>
        <b>{c.name}</b> <span className="bai-muted">{c.backend}</span>
        <span className="bai-cluster-size bai-muted">{c.min_nodes}–{c.max_nodes} nodes</span>
        {c.allocation_state === 'resizing' && <span className="bai-muted"> resizing</span>}
        <button className="bai-cluster-resize" onClick={() => setResizing(!resizing)}>Resize</button>
      </div>
      <div className="bai-chips">
        {(['idle', 'running', 'preparing', 'unusable'] as const).map(k => (
          <span key={k} className={`bai-chip bai-node-${k}`}>{k} {c.nodes[k]}</span>
        ))}
        <span className="bai-chip">GPUs {c.gpus.free}/{c.gpus.total}</span>
        <span className="bai-chip">queued {c.queued}</span>
      </div>
      {resizing && (
        <ResizeForm cluster={c} onCancel={() => setResizing(false)} onSubmit={async (min, max) => {
          try {
            props.onChanged(await client.resize(c.name, { min_nodes: min, max_nodes: max }));
            setResizing(false);
            setError(null);
          } catch (err) {
            setError(err instanceof ApiError && err.field ? `${err.field}: ${err.message}` : (err as Error).message);
          }
        }} />
      )}
      {error && <div className="bai-error">{error}</div>}
      {open && <NodeList nodes={nodes} openRun={props.openRun} />}
    </div>
  );
}

function ResizeForm(props: { cluster: ClusterInfo; onSubmit: (min: number, max: number) => void; onCancel: () => void }): JSX.Element {
  const [min, setMin] = React.useState(String(props.cluster.min_nodes));
  const [max, setMax] = React.useState(String(props.cluster.max_nodes));
  return (
    <form className="bai-resize-form" onSubmit={e => { e.preventDefault(); props.onSubmit(Number(min), Number(max)); }}>
      <label>min <input className="bai-resize-min" type="number" min={0} value={min} onChange={e => setMin(e.target.value)} /></label>
      <label>max <input className="bai-resize-max" type="number" min={0} value={max} onChange={e => setMax(e.target.value)} /></label>
      <button type="submit" className="bai-resize-apply">Apply</button>
      <button type="button" onClick={props.onCancel}>Cancel</button>
    </form>
  );
}

function NodeList(props: { nodes: NodeInfo[] | null; openRun: (id: string) => void }): JSX.Element {
  if (props.nodes === null) return <div className="bai-muted bai-node-list">reading nodes…</div>;
  if (props.nodes.length === 0) return <div className="bai-muted bai-node-list">no nodes (they start when a run needs one)</div>;
  return (
    <div className="bai-node-list">
      {props.nodes.map(n => (
        <div className="bai-node-row" data-node-id={n.id} key={n.id}>
          <span className="bai-node-id">{n.id}</span>
          <span className={`bai-chip bai-node-${n.state}`}>{n.state}</span>
          {n.host && <span className="bai-muted">{n.host}</span>}
          {n.run_id && (
            <a className="bai-node-run" href="#" onClick={e => { e.preventDefault(); props.openRun(n.run_id!); }}>{n.run_id}</a>
          )}
          {n.reason && <span className="bai-node-reason">{n.reason}</span>}
        </div>
      ))}
    </div>
  );
}

/** The Metrics tab: one SVG line chart per scalar metric, refreshed while the run is active. */
import * as React from 'react';

import type { BatchAIClient, MetricSeries } from '../api';
import { chartGeometry, shortNumber } from './chart';
import { errorText, usePoll } from './hooks';

/** Points asked for per metric: the server keeps each bucket's min and max, so spikes show. */
export const MAX_POINTS = 400;
/** How often an active run's metrics are read again while the tab is on screen. */
export const METRICS_POLL_MS = 5000;

const W = 360;
const H = 120;
const M = { left: 52, right: 60, top: 8, bottom: 24 };

/** The last "x,y" of a polyline's points: where the last value is drawn. */
function lastXY(points: string): [number, number] | null {
  const last = points.slice(points.lastIndexOf(' ') + 1);
  const [x, y] = last.split(',').map(Number);
  return isFinite(x) && isFinite(y) ? [x, y] : null;
}

export function MetricChart(props: { series: MetricSeries }): JSX.Element {
  const { series } = props;
  const g = chartGeometry(series.points, W, H);
  const last = series.points[series.points.length - 1];
  const at = lastXY(g.points);
  const ranks = Object.keys(series.ranks || {}).length;
  return (
    <div className="bai-metric-chart" data-metric={series.name}>
      <div className="bai-metric-title">
        <b className="bai-metric-name">{series.name}</b>{' '}
        {last ? <span className="bai-metric-last">last {shortNumber(last.value)} at step {last.step}</span> : null}
        {series.downsampled ? <span className="bai-metric-note"> · {series.points.length} of {series.count} points (min/max kept)</span> : null}
        {ranks > 1 ? <span className="bai-metric-note"> · lowest of {ranks} ranks</span> : null}
      </div>
      <svg width={W + M.left + M.right} height={H + M.top + M.bottom} role="img" aria-label={`${series.name} by step`}>
        <g transform={`translate(${M.left},${M.top})`}>
          <rect className="bai-metric-area" x={0} y={0} width={W} height={H} />
          {g.yTicks.map(t => (
            <g key={`y${t.label}`} className="bai-metric-ytick">
              <line x1={0} x2={W} y1={t.pos} y2={t.pos} />
              <text x={-4} y={t.pos} dy="0.32em" textAnchor="end">{t.label}</text>
            </g>
          ))}
          {g.xTicks.map(t => (
            <g key={`x${t.label}`} className="bai-metric-xtick">
              <line x1={t.pos} x2={t.pos} y1={H} y2={H + 4} />
              <text x={t.pos} y={H + 15} textAnchor="middle">{t.label}</text>
            </g>
          ))}
          <text className="bai-metric-axis" x={W} y={H + 15} dx={8} textAnchor="start">step</text>
          <polyline className="bai-metric-line" points={g.points} />
          {at && last ? (
            <g className="bai-metric-lastmark">
              <circle cx={at[0]} cy={at[1]} r={2.5} />
              <text x={W + 4} y={at[1]} dy="0.32em">{shortNumber(last.value)}</text>
            </g>
          ) : null}
        </g>
      </svg>
    </div>
  );
}

interface Props {
  client: BatchAIClient;
  runId: string;
  active: boolean;
  visible: boolean;
}

/** Every metric's chart; a metric is read again only when its point count changed. */
export function Metrics(props: Props): JSX.Element {
  const { client, runId, active, visible } = props;
  const [kinds, setKinds] = React.useState<Record<string, { kind: string; points: number }> | null>(null);
  const [series, setSeries] = React.useState<Record<string, MetricSeries>>({});
  const [error, setError] = React.useState('');
  const counts = React.useRef<Record<string, number>>({});
  const load = async () => {
    try {
      const found = await client.metrics(runId);
      const stale = Object.keys(found).filter(n => found[n].kind === 'scalar' && counts.current[n] !== found[n].points);
      const got = await Promise.all(stale.map(n => client.metric(runId, n, MAX_POINTS)));
      stale.forEach(n => (counts.current[n] = found[n].points));
      if (got.length) {
        setSeries(s => {
          const next = { ...s };
          got.forEach(m => (next[m.name] = m));
          return next;
        });
      }
      setKinds(found);
      setError('');
    } catch (e) {
      setError(errorText(e));
    }
  };
  usePoll(load, METRICS_POLL_MS, visible && (active || kinds === null));
  const wasActive = React.useRef(active);
  React.useEffect(() => {
    if (wasActive.current && !active && visible) {
      void load(); // the points logged just before the end
    }
    wasActive.current = active;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [active, visible]);
  if (error && kinds === null) {
    return <div className="bai-runview-error">{error}</div>;
  }
  if (kinds === null) {
    return <div className="bai-metrics-empty">loading…</div>;
  }
  const names = Object.keys(kinds).sort();
  const scalar = names.filter(n => kinds[n].kind === 'scalar' && series[n]);
  const others = names.filter(n => kinds[n].kind !== 'scalar');
  if (names.length === 0) {
    return (
      <div className="bai-metrics-empty">
        {active ? 'This run has logged no metrics yet.' : 'This run logged no metrics.'}
      </div>
    );
  }
  return (
    <div className="bai-metrics">
      {error ? <div className="bai-runview-error">{error}</div> : null}
      <div className="bai-metric-grid">
        {scalar.map(n => <MetricChart key={n} series={series[n]} />)}
      </div>
      {others.length ? (
        <div className="bai-metrics-others">
          Not charted: {others.map(n => `${n} (${kinds[n].kind})`).join(', ')}
        </div>
      ) : null}
    </div>
  );
}

/** A run row's metric as a tiny inline SVG line (the points GET /runs?spark= gave, ≤ 30). */
import * as React from 'react';

import { Spark } from '../api';

const W = 48;
const H = 16;

export function Sparkline(props: { spark: Spark | null | undefined }): JSX.Element | null {
  const spark = props.spark;
  if (!spark || spark.points.length === 0) return null;
  const xs = spark.points.map(p => p[0]);
  const ys = spark.points.map(p => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const x = (v: number) => (x1 === x0 ? W / 2 : ((v - x0) / (x1 - x0)) * (W - 2) + 1);
  const y = (v: number) => (y1 === y0 ? H / 2 : H - 1 - ((v - y0) / (y1 - y0)) * (H - 2));
  const line = spark.points.map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
  const last = spark.points[spark.points.length - 1];
  return (
    <svg className="bai-spark" width={W} height={H} viewBox={`0 0 ${W} ${H}`} data-metric={spark.metric}
      data-points={spark.points.length} data-count={spark.count}>
      <title>{`${spark.metric}: last ${formatValue(last[1])} at step ${last[0]} (${spark.count} points)`}</title>
      <polyline points={line} fill="none" />
      <circle cx={x(last[0])} cy={y(last[1])} r={1.5} />
    </svg>
  );
}

function formatValue(v: number): string {
  return Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.001) ? v.toExponential(2) : String(+v.toPrecision(4));
}

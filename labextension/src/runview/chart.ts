/** Geometry of the small metric line charts: scales, round tick values, the SVG polyline. */

export interface Point {
  step: number;
  value: number;
}

export interface ChartGeometry {
  points: string; // the polyline's "x,y x,y ..."
  xTicks: { pos: number; label: string }[];
  yTicks: { pos: number; label: string }[];
}

/** Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart). */
export function niceTicks(lo: number, hi: number, count = 4): number[] {
  if (!isFinite(lo) || !isFinite(hi)) {
    return [];
  }
  if (hi === lo) {
    return [lo];
  }
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return out;
}

/** A short label: 3 significant digits, exponents for the very large and small. */
export function shortNumber(v: number): string {
  if (v === 0) {
    return '0';
  }
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) {
    return v.toExponential(1);
  }
  return String(Number(v.toPrecision(3)));
}

/** Lay the points out in a width x height plot area (y grows downwards in SVG). */
export function chartGeometry(points: Point[], width: number, height: number): ChartGeometry {
  const finite = points.filter(p => isFinite(p.value) && isFinite(p.step));
  if (finite.length === 0) {
    return { points: '', xTicks: [], yTicks: [] };
  }
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (const p of finite) {
    x0 = Math.min(x0, p.step);
    x1 = Math.max(x1, p.step);
    y0 = Math.min(y0, p.value);
    y1 = Math.max(y1, p.value);
  }
  if (y0 === y1) {
    y0 -= Math.abs(y0) * 0.1 || 1;
    y1 += Math.abs(y1) * 0.1 || 1;
  }
  const sx = (x: number) => (x1 === x0 ? width / 2 : ((x - x0) / (x1 - x0)) * width);
  const sy = (y: number) => height - ((y - y0) / (y1 - y0)) * height;
  const coords = finite.map(p => `${sx(p.step).toFixed(1)},${sy(p.value).toFixed(1)}`).join(' ');
  return {
    points: coords,
    xTicks: niceTicks(x0, x1, 4).map(v => ({ pos: sx(v), label: shortNumber(v) })),
    yTicks: niceTicks(y0, y1, 3).map(v => ({ pos: sy(v), label: shortNumber(v) }))
  };
}

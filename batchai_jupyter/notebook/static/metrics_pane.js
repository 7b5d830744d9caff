// The live metric charts of RunDetails: series kept on the front end, fed point by point.
//
// Messages from the kernel (model.send on the Python side):
//   {kind: "reset", seq, points, others}   replace everything (a late view, a requeue)
//   {kind: "append", seq, points, others?} points logged since the last message
// points: [[metric, rank or null, [[step, value], ...]], ...]; others: {metric: text}, the
// non-numeric metrics (only the changed ones in an append).
// Message to the kernel: {kind: "sync"} (send me a reset).
// One chart per metric, one line per rank; a long series is drawn from the min and max of
// each pixel column, so the DOM stays one <path> per line however many points there are.

const STATES = new Map();
const W = 320, H = 120, PAD_L = 48, PAD_R = 8, PAD_T = 8, PAD_B = 18;
const SVGNS = "http://www.w3.org/2000/svg";
const MIN_PAINT_MS = 250;  // at most four redraws a second

function newState() {
  return { metrics: new Map(), others: {}, seq: -1, views: new Set() };
}

function fmt(v) {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toPrecision(6)));
}

// Axis labels: three digits, an exponent for the very small and the very large.
function axis(v) {
  const a = Math.abs(v);
  if (a === 0 || (a >= 1e-3 && a < 1e5)) return String(Number(v.toPrecision(3)));
  return v.toExponential(2);
}

function add(state, points) {
  for (const [name, rank, pts] of points || []) {
    let metric = state.metrics.get(name);
    if (!metric) { metric = new Map(); state.metrics.set(name, metric); }
    const key = rank === null || rank === undefined ? "" : String(rank);
    let s = metric.get(key);
    if (!s) { s = { rank: key, xs: [], ys: [] }; metric.set(key, s); }
    for (const [x, y] of pts) {
      if (typeof y !== "number" || !Number.isFinite(y)) continue;
      s.xs.push(Number(x));
      s.ys.push(y);
    }
  }
}

function apply(state, msg) {
  if (msg.kind === "reset") {
    state.metrics = new Map();
    state.others = {};
    state.seq = msg.seq;
    add(state, msg.points);
    Object.assign(state.others, msg.others || {});
  } else if (msg.kind === "append") {
    if (msg.seq <= state.seq) return;
    state.seq = msg.seq;
    add(state, msg.points);
    Object.assign(state.others, msg.others || {});
  } else {
    return;
  }
  for (const v of state.views) schedule(v);
}

// The points drawn for one series: all of them when they fit, else per pixel column the
// lowest and the highest (in the order they came), so spikes stay visible.
function sample(s, x0, sx) {
  const n = s.xs.length;
  const cols = W - PAD_L - PAD_R;
  if (n <= 2 * cols) return s.xs.map((x, i) => [x, s.ys[i]]);
  const lo = new Array(cols + 1).fill(-1), hi = new Array(cols + 1).fill(-1);
  for (let i = 0; i < n; i++) {
    const c = Math.max(0, Math.min(cols, Math.floor((s.xs[i] - x0) * sx)));
    if (lo[c] < 0 || s.ys[i] < s.ys[lo[c]]) lo[c] = i;
    if (hi[c] < 0 || s.ys[i] > s.ys[hi[c]]) hi[c] = i;
  }
  const out = [];
  for (let c = 0; c <= cols; c++) {
    if (lo[c] < 0) continue;
    const [a, b] = lo[c] <= hi[c] ? [lo[c], hi[c]] : [hi[c], lo[c]];
    out.push([s.xs[a], s.ys[a]]);
    if (b !== a) out.push([s.xs[b], s.ys[b]]);
  }
  if (out.length && out[out.length - 1][0] !== s.xs[n - 1]) out.push([s.xs[n - 1], s.ys[n - 1]]);
  return out;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function newChart(name) {
  const box = document.createElement("div");
  box.className = "bai-mchart";
  box.dataset.metric = name;
  const title = document.createElement("div");
  title.className = "bai-mchart-title";
  title.textContent = name;
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
  svg.setAttribute("aria-label", `chart of ${name}`);
  svg.appendChild(svgEl("rect", { class: "bai-mchart-frame", x: PAD_L, y: PAD_T,
    width: W - PAD_L - PAD_R, height: H - PAD_T - PAD_B }));
  const labels = ["ymax", "ymin", "xmin", "xmax"].map((k) => {
    const t = svgEl("text", { class: `bai-mchart-axis bai-mchart-${k}` });
    svg.appendChild(t);
    return t;
  });
  labels[0].setAttribute("x", PAD_L - 3); labels[0].setAttribute("y", PAD_T + 8);
  labels[1].setAttribute("x", PAD_L - 3); labels[1].setAttribute("y", H - PAD_B);
  labels[2].setAttribute("x", PAD_L); labels[2].setAttribute("y", H - 4);
  labels[3].setAttribute("x", W - PAD_R); labels[3].setAttribute("y", H - 4);
  const last = document.createElement("div");
  last.className = "bai-mchart-last";
  box.append(title, svg, last);
  return { box, svg, labels, last, lines: new Map() };
}

function paintChart(chart, metric) {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of metric.values()) {
    for (let i = 0; i < s.xs.length; i++) {
      const x = s.xs[i], y = s.ys[i];
      if (x < x0) x0 = x; if (x > x1) x1 = x;
      if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
  }
  const sx = (W - PAD_L - PAD_R) / ((x1 - x0) || 1);
  const sy = (H - PAD_T - PAD_B) / ((y1 - y0) || 1);
  const keys = [...metric.keys()].sort((a, b) => Number(a) - Number(b));
  const lastText = [];
  keys.forEach((key, k) => {
    const s = metric.get(key);
    let line = chart.lines.get(key);
    if (!line) {
      line = svgEl("path", { class: `bai-mseries bai-mseries-${k % 6}`, fill: "none" });
      chart.svg.appendChild(line);
      chart.lines.set(key, line);
    }
    const pts = sample(s, x0, sx);
    let d = "";
    for (const [x, y] of pts) {
      d += `${d ? "L" : "M"}${(PAD_L + (x - x0) * sx).toFixed(1)} ${(H - PAD_B - (y - y0) * sy).toFixed(1)}`;
    }
    if (pts.length === 1) d += "h0.1";  // one point: a dot (round line caps)
    line.setAttribute("d", d);
    const n = s.ys.length;
    if (n) lastText.push(`${key === "" ? "" : `rank ${key}: `}${fmt(s.ys[n - 1])}`);
  });
  if (x0 <= x1) {
    chart.labels[0].textContent = axis(y1);
    chart.labels[1].textContent = axis(y0);
    chart.labels[2].textContent = axis(x0);
    chart.labels[3].textContent = axis(x1);
  }
  let count = 0;
  for (const s of metric.values()) count += s.ys.length;
  chart.last.textContent = `last ${lastText.join(" · ")} · ${count.toLocaleString()} points`;
  chart.box.dataset.points = String(count);
}

function paint(view) {
  const { state, grid, table } = view;
  for (const [name, metric] of state.metrics) {
    let chart = view.charts.get(name);
    if (!chart) { chart = newChart(name); view.charts.set(name, chart); grid.appendChild(chart.box); }
    paintChart(chart, metric);
  }
  for (const [name, chart] of view.charts) {
    if (!state.metrics.has(name)) { chart.box.remove(); view.charts.delete(name); }
  }
  const names = Object.keys(state.others);
  table.style.display = names.length ? "" : "none";
  table.textContent = "";
  for (const name of names.sort()) {
    const tr = document.createElement("tr");
    const a = document.createElement("td"), b = document.createElement("td");
    a.textContent = name;
    b.textContent = state.others[name];
    tr.append(a, b);
    table.appendChild(tr);
  }
  const empty = state.metrics.size === 0 && names.length === 0;
  view.el.classList.toggle("bai-mcharts-empty", empty);
  view.lastPaint = performance.now();
}

function schedule(view) {
  if (view.pending) return;
  view.pending = true;
  const wait = Math.max(0, view.lastPaint + MIN_PAINT_MS - performance.now());
  setTimeout(() => requestAnimationFrame(() => { view.pending = false; paint(view); }), wait);
}

function stateOf(model) {
  const key = model.get("pane_id");
  let state = STATES.get(key);
  if (!state) { state = newState(); STATES.set(key, state); }
  return state;
}

function initialize({ model }) {
  const state = stateOf(model);
  model.on("msg:custom", (msg) => apply(state, msg));
  model.send({ kind: "sync" });
  return () => STATES.delete(model.get("pane_id"));
}

function render({ model, el }) {
  const state = stateOf(model);
  el.classList.add("bai-mcharts");
  const grid = document.createElement("div");
  grid.className = "bai-mcharts-grid";
  const table = document.createElement("table");
  table.className = "bai-mcharts-others";
  el.append(grid, table);
  const view = { state, el, grid, table, charts: new Map(), pending: false, lastPaint: 0 };
  state.views.add(view);
  paint(view);
  if (state.seq < 0) model.send({ kind: "sync" });
  return () => { state.views.delete(view); };
}

export default { initialize, render };

// The live log pane of RunDetails: a small terminal fed by deltas from the kernel.
//
// Messages from the kernel (model.send on the Python side):
//   {kind: "reset", seq, text, earlier, file}  replace everything (a new file, a resync)
//   {kind: "append", seq, text}                new bytes of the file (may end mid-line)
//   {kind: "full", text, file, path, size, shown, truncated}
//                                              the file, asked for by "open full log" where
//                                              the server does not serve it (cut at 32 MiB)
// Messages to the kernel: {kind: "sync"} (send me a reset) and {kind: "full"}.
// Lines are kept per model, so every view of the model shows the same terminal.
//
// "open full log" downloads the file from the server extension's file route
// (<base_url>/batchai/api/v1/runs/{run_id}/files/{file_path}, base_url from the page's
// jupyter-config-data) when that server lists the file for this run; else it asks the kernel.

const STATES = new Map();
const NAMES = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];

function newState() {
  return { lines: [], cur: null, earlier: 0, seq: -1, file: "", views: new Set(), maxLines: 5000 };
}

function newLine() {
  return { chars: [], styles: [], col: 0, dirty: true, el: null };
}

function sgr(style, params) {
  const s = Object.assign({}, style);
  const p = params.length ? params : [0];
  for (let i = 0; i < p.length; i++) {
    const n = p[i];
    if (n === 0) { for (const k of Object.keys(s)) delete s[k]; }
    else if (n === 1) s.bold = true;
    else if (n === 2) s.dim = true;
    else if (n === 3) s.italic = true;
    else if (n === 4) s.underline = true;
    else if (n === 7) s.inverse = true;
    else if (n === 22) { delete s.bold; delete s.dim; }
    else if (n === 23) delete s.italic;
    else if (n === 24) delete s.underline;
    else if (n === 27) delete s.inverse;
    else if (n >= 30 && n <= 37) s.fg = NAMES[n - 30];
    else if (n >= 90 && n <= 97) s.fg = "bright-" + NAMES[n - 90];
    else if (n >= 40 && n <= 47) s.bg = NAMES[n - 40];
    else if (n >= 100 && n <= 107) s.bg = "bright-" + NAMES[n - 100];
    else if (n === 39) delete s.fg;
    else if (n === 49) delete s.bg;
    else if ((n === 38 || n === 48) && p[i + 1] === 5) {
      s[n === 38 ? "fg" : "bg"] = xterm256(p[i + 2] || 0);
      i += 2;
    } else if ((n === 38 || n === 48) && p[i + 1] === 2) {
      s[n === 38 ? "fg" : "bg"] = `rgb(${p[i + 2] || 0},${p[i + 3] || 0},${p[i + 4] || 0})`;
      i += 4;
    }
  }
  return Object.freeze(s);
}

function xterm256(n) {
  if (n < 8) return NAMES[n];
  if (n < 16) return "bright-" + NAMES[n - 8];
  if (n < 232) {
    const v = [0, 95, 135, 175, 215, 255];
    const k = n - 16;
    return `rgb(${v[Math.floor(k / 36)]},${v[Math.floor(k / 6) % 6]},${v[k % 6]})`;
  }
  const g = 8 + (n - 232) * 10;
  return `rgb(${g},${g},${g})`;
}

const PLAIN = Object.freeze({});

// Feed text through the terminal: \n ends a line, \r returns to its start (a progress bar
// redraws in place), ESC[...m sets colours, ESC[K clears to the end; other escapes are dropped.
function feed(state, text) {
  if (!state.cur) state.cur = newLine();
  let style = state.style || PLAIN;
  let i = 0;
  const special = /[\r\n\x1b\x08]/g;
  while (i < text.length) {
    special.lastIndex = i;
    const m = special.exec(text);
    const end = m ? m.index : text.length;
    if (end > i) write(state.cur, text.slice(i, end), style);
    if (!m) break;
    const ch = m[0];
    i = end + 1;
    if (ch === "\n") {
      state.cur.dirty = true;
      state.lines.push(state.cur);
      state.cur = newLine();
    } else if (ch === "\r") {
      state.cur.col = 0;
    } else if (ch === "\x08") {
      state.cur.col = Math.max(0, state.cur.col - 1);
    } else {
      const esc = /^\[([0-9;?]*)([A-Za-z])/.exec(text.slice(i, i + 32));
      if (!esc) { if (text[i] === "]") { const bel = text.indexOf("\x07", i); i = bel < 0 ? text.length : bel + 1; } continue; }
      i += esc[0].length;
      const params = esc[1].split(";").filter((x) => x !== "" && x !== "?").map(Number);
      if (esc[2] === "m") style = sgr(style, params);
      else if (esc[2] === "K") { state.cur.chars.length = state.cur.col; state.cur.styles.length = state.cur.col; state.cur.dirty = true; }
      else if (esc[2] === "G") state.cur.col = Math.max(0, (params[0] || 1) - 1);
    }
  }
  state.style = style;
  const extra = state.lines.length - state.maxLines;
  if (extra > 0) {
    state.lines.splice(0, extra);
    state.earlier += extra;
    state.trimmed = (state.trimmed || 0) + extra;
  }
}

function write(line, s, style) {
  const chars = line.chars;
  if (line.col === chars.length) {
    for (const c of s) { chars.push(c); line.styles.push(style); }
    line.col = chars.length;
  } else {
    for (const c of s) { chars[line.col] = c; line.styles[line.col] = style; line.col++; }
  }
  line.dirty = true;
}

function classesOf(style) {
  const out = [];
  let fg = style.fg, bg = style.bg;
  if (style.inverse) { [fg, bg] = [bg || "inverse-bg", fg || "inverse-fg"]; }
  if (fg && !fg.startsWith("rgb")) out.push(`ansi-${fg}-fg`);
  if (bg && !bg.startsWith("rgb")) out.push(`ansi-${bg}-bg`);
  if (style.bold) out.push("ansi-bold");
  if (style.dim) out.push("ansi-dim");
  if (style.italic) out.push("ansi-italic");
  if (style.underline) out.push("ansi-underline");
  return [out.join(" "), fg && fg.startsWith("rgb") ? fg : "", bg && bg.startsWith("rgb") ? bg : ""];
}

function renderLine(line) {
  const el = line.el || document.createElement("div");
  el.className = "bai-pane-line";
  el.textContent = "";
  let start = 0;
  const n = line.chars.length;
  if (n === 0) el.textContent = "\u200b";
  while (start < n) {
    const st = line.styles[start];
    let end = start + 1;
    while (end < n && line.styles[end] === st) end++;
    const text = line.chars.slice(start, end).join("");
    if (st === PLAIN || !st || Object.keys(st).length === 0) {
      el.appendChild(document.createTextNode(text));
    } else {
      const span = document.createElement("span");
      const [cls, fg, bg] = classesOf(st);
      if (cls) span.className = cls;
      if (fg) span.style.color = fg;
      if (bg) span.style.backgroundColor = bg;
      span.textContent = text;
      el.appendChild(span);
    }
    start = end;
  }
  line.el = el;
  line.dirty = false;
  return el;
}

function atBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 4;
}

// Bring one view's DOM up to the state: new lines appended, changed lines redrawn, lines
// trimmed from the top with the scroll position kept where the user left it.
function paint(view) {
  const { state, box, list, banner, jump } = view;
  const follow = view.follow;
  const before = box.scrollHeight;
  const shown = new Set(state.lines);
  if (state.cur) shown.add(state.cur);
  while (list.firstChild && !shown.has(list.firstChild.__line)) list.removeChild(list.firstChild);
  const removed = before - box.scrollHeight;
  const frag = document.createDocumentFragment();
  const all = state.cur ? state.lines.concat([state.cur]) : state.lines;
  for (const line of all) {
    const had = line.el && line.el.parentNode === list;
    if (line.dirty || !had) {
      const el = renderLine(line);
      el.__line = line;
      if (!had) frag.appendChild(el);
    }
  }
  list.appendChild(frag);
  if (state.earlier > 0) {
    if (state.model && state.probeUrl === undefined) probe(state.model, state);
    banner.style.display = "";
    banner.firstChild.textContent = `${state.earlier.toLocaleString()} earlier lines — `;
  } else {
    banner.style.display = "none";
  }
  if (follow) {
    box.scrollTop = box.scrollHeight;
  } else if (removed > 0) {
    box.scrollTop = Math.max(0, box.scrollTop - removed);
  }
  jump.style.display = follow ? "none" : "block";
  const empty = state.lines.length === 0 && (!state.cur || state.cur.chars.length === 0);
  box.classList.toggle("bai-pane-empty", empty);
  const name = state.file || (state.model && state.model.get("file")) || "this file";
  if (empty) box.dataset.empty = `${name}: nothing written yet`;
}

function apply(state, msg) {
  if (msg.kind === "reset") {
    state.lines = [];
    state.cur = null;
    state.style = PLAIN;
    state.earlier = msg.earlier || 0;
    state.file = msg.file || "";
    state.seq = msg.seq;
    feed(state, msg.text || "");
    for (const v of state.views) { v.list.textContent = ""; v.follow = true; }
    if (state.note) say(state, "");
  } else if (msg.kind === "append") {
    if (msg.seq <= state.seq) return;
    state.seq = msg.seq;
    feed(state, msg.text || "");
  } else if (msg.kind === "full") {
    let text = msg.text || "";
    if (msg.truncated) {
      const note = `the first ${mib(msg.shown || text.length)} of ${mib(msg.size)} shown; the whole file is ${msg.path}`;
      text += `\n[open full log: ${note}]\n`;
      say(state, `cut: ${note}`);
    }
    const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
    const tab = state.fullTab;  // opened by the click itself: a popup blocker lets it through
    state.fullTab = null;
    if (tab && !tab.closed) tab.location.href = url;
    else window.open(url, "_blank");
    return;
  } else {
    return;
  }
  for (const v of state.views) schedule(v);
}

function mib(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

// A line under the banner of every view (what "open full log" did), until the next reset.
function say(state, text) {
  state.note = text;
  for (const v of state.views) { v.note.textContent = text; v.note.style.display = text ? "" : "none"; }
}

// The server's URL of the followed file, or null where this page has no Jupyter server that
// serves this run (no extension, another workspace, a front end without jupyter-config-data).
// The probe asks for the run's log list with the page's cookies, as the download will.
async function serverFileUrl(model) {
  const cfg = document.getElementById("jupyter-config-data");
  const id = model.get("run_id"), rel = model.get("file_path");
  if (!cfg || !id || !rel) return null;
  let base;
  try { base = JSON.parse(cfg.textContent).baseUrl; } catch (e) { return null; }
  if (typeof base !== "string") return null;
  const api = `${base.replace(/\/*$/, "/")}batchai/api/v1/runs/${encodeURIComponent(id)}`;
  try {
    const r = await fetch(`${api}/logs`, { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) return null;
    const body = await r.json();
    if (!(body.files || []).some((f) => f.name === rel)) return null;
  } catch (e) {
    return null;
  }
  return `${api}/files/${rel.split("/").map(encodeURIComponent).join("/")}`;
}

// The server's URL of the file, asked once per file (when the banner shows): null where the
// kernel has to send it. Asked again after a null: the server may come to know the run.
function probe(model, state) {
  const key = `${model.get("run_id")}/${model.get("file_path")}`;
  if (!state.probe || state.probeKey !== key) {
    state.probeKey = key;
    state.probeUrl = undefined;
    state.probe = serverFileUrl(model).then((url) => {
      if (state.probeKey === key) state.probeUrl = url;
      return url;
    });
  }
  return state.probe;
}

function download(state, url, rel) {
  const a = document.createElement("a");
  a.href = url;
  a.download = rel.split("/").pop();
  a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
  say(state, `downloading ${rel} from the Jupyter server`);
}

function openFull(model, state) {
  const rel = model.get("file_path");
  const asked = probe(model, state);
  if (state.probeUrl) { download(state, state.probeUrl, rel); return; }
  // the kernel's copy goes to a tab opened by the click itself (a popup blocker lets it through)
  const tab = window.open("", "_blank");
  const viaKernel = () => { state.probe = null; state.fullTab = tab; model.send({ kind: "full" }); };
  if (state.probeUrl === null) { viaKernel(); return; }
  asked.then((url) => {
    if (!url) { viaKernel(); return; }
    if (tab && !tab.closed) tab.close();
    download(state, url, rel);
  });
}

function schedule(view) {
  if (view.pending) return;
  view.pending = true;
  requestAnimationFrame(() => { view.pending = false; paint(view); });
}

function stateOf(model) {
  const key = model.get("pane_id");
  let state = STATES.get(key);
  if (!state) {
    state = newState();
    STATES.set(key, state);
  }
  state.maxLines = model.get("max_lines") || state.maxLines;
  state.model = model;
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
  el.classList.add("bai-pane");
  const banner = document.createElement("div");
  banner.className = "bai-pane-banner";
  banner.appendChild(document.createTextNode(""));
  const open = document.createElement("button");
  open.className = "bai-pane-open";
  open.textContent = "open full log";
  open.title = "Download the whole file from the Jupyter server (or open what the kernel sends in a new tab)";
  open.addEventListener("click", () => openFull(model, state));
  banner.appendChild(open);
  const note = document.createElement("div");
  note.className = "bai-pane-note";
  note.textContent = state.note || "";
  note.style.display = state.note ? "" : "none";
  banner.appendChild(note);
  const box = document.createElement("div");
  box.className = "bai-pane-scroll";
  box.tabIndex = 0;
  const list = document.createElement("div");
  list.className = "bai-pane-lines";
  box.appendChild(list);
  const jump = document.createElement("button");
  jump.className = "bai-pane-jump";
  jump.textContent = "\u2193 jump to latest";
  el.append(banner, box, jump);
  const view = { state, box, list, banner, jump, note, follow: true, pending: false, upAt: 0 };
  jump.addEventListener("click", () => { view.follow = true; schedule(view); });
  // The user moving up stops the following at once (before the smooth scroll has moved
  // anything); reaching the bottom again, by any means, resumes it.
  const up = () => {
    view.upAt = performance.now();
    if (view.follow) { view.follow = false; jump.style.display = "block"; }
  };
  box.addEventListener("wheel", (e) => { if (e.deltaY < 0) up(); }, { passive: true });
  box.addEventListener("keydown", (e) => { if (["ArrowUp", "PageUp", "Home"].includes(e.key)) up(); });
  box.addEventListener("mousedown", (e) => { if (e.offsetX > box.clientWidth) up(); });
  box.addEventListener("scroll", () => {
    const bottom = atBottom(box);
    if (bottom && !view.follow && performance.now() - view.upAt < 300) return;
    if (bottom !== view.follow) {
      view.follow = bottom;
      jump.style.display = bottom ? "none" : "block";
    }
  });
  // a theme or width change reflows the lines: a followed pane stays at the bottom
  const resize = new ResizeObserver(() => { if (view.follow) box.scrollTop = box.scrollHeight; });
  resize.observe(list);
  resize.observe(box);
  state.views.add(view);
  paint(view);
  if (state.seq < 0) model.send({ kind: "sync" });
  return () => { resize.disconnect(); state.views.delete(view); };
}

export default { initialize, render };

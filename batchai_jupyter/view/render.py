"""HTML fragments for the run view: badge, properties, metric charts and tables, child runs.

Plain functions from data to HTML strings, shared by the live widget (stock ipywidgets.HTML
values) and the static summary a saved notebook keeps. No widget code lives here.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import SpecError
from ..records import RunRow
from ..spec import JobSpec

# white text on each badge colour has a contrast of at least 4.5:1 (WCAG AA), light or dark theme
STATUS_COLORS = {
    "Queued": "#5c636a", "Preparing": "#0a58ca", "Running": "#0a58ca", "Finalizing": "#0a58ca",
    "CancelRequested": "#a04a00", "Completed": "#146c43", "Failed": "#b02a37", "Canceled": "#a04a00",
}
CHART_W, CHART_H = 220, 70


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def badge(status: str, detail: str = "") -> str:
    """The status pill; `detail` (a parent's child progress, e.g. "3/12 running") follows it."""
    color = STATUS_COLORS.get(status, "#5c636a")
    extra = (f' <span class="bai-progress" style="font-weight:400">{esc(detail)}</span>'
             if detail else "")
    return (f'<span class="bai-status" data-status="{esc(status)}" style="background:{color};'
            f'color:white;padding:2px 10px;border-radius:10px;font-weight:600;white-space:nowrap">'
            f'{esc(status)}{extra}</span>')


def when(ts: float | None) -> str:
    if ts is None:
        return ""
    return _dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def duration_text(row: Mapping[str, Any], now: float | None = None) -> str:
    started = row.get("started")
    if started is None:
        return ""
    seconds = max(0.0, (row.get("ended") or now or time.time()) - started)
    if seconds < 60:
        return f"{seconds:.1f} s"
    return str(_dt.timedelta(seconds=round(seconds)))


def run_properties(row: RunRow) -> list[tuple[str, str]]:
    """(label, text) pairs of the properties a user checks first."""
    try:
        spec = JobSpec.from_dict(row.get("spec") or {})
    except (SpecError, TypeError):  # written by a newer version: show what every version has
        spec = JobSpec()
    what = spec.command or spec.script or ""
    nodes = ", ".join(n.get("id", "") for n in row.get("nodes") or []) if row.get("nodes") else ""
    items = [("Run id", row["id"]), ("Status", row["status"]), ("Experiment", row["experiment"]),
             ("Run number", row.get("number")), ("Cluster", row.get("cluster") or ""),
             ("Nodes", nodes or f"{spec.node_count} requested"),
             ("Submitted", when(row.get("created"))), ("Started", when(row.get("started"))),
             ("Ended", when(row.get("ended"))), ("Duration", duration_text(row)),
             ("Command" if spec.command else "Script", what),
             ("Arguments", " ".join(spec.arguments)),
             ("Tags", ", ".join(f"{k}={v}" for k, v in (row.get("tags") or {}).items()))]
    if row.get("parent_id"):
        items.append(("Parent run", row["parent_id"]))
    if spec.distribution:
        items.append(("Distribution", f"{spec.distribution} ({spec.node_count} x "
                                      + f"{spec.process_count_per_node})"))
    props = row.get("properties") or {}
    waiting = props.get("waiting")
    if row["status"] == "Queued" and waiting:  # what the run waits for (unusable nodes' errors)
        items.append(("Waiting", waiting))
    if props.get("warning"):  # "workspace disk full ...": the copies of its files wait for space
        items.append(("Warning", props["warning"]))
    error = row.get("error")
    if error:
        items.append(("Error", ": ".join([error.get("message", ""), *error.get("last_lines", [])[-1:]])
                      if isinstance(error, dict) else error))  # the message and the exception line
    return [(k, "" if v is None else str(v)) for k, v in items]


def kv_table(items: Iterable[tuple[str, str]]) -> str:
    rows = "".join(f'<tr><th style="text-align:left;padding-right:12px">{esc(k)}</th>'
                   f'<td style="text-align:left">{esc(v)}</td></tr>' for k, v in items)
    return f'<table class="bai-properties">{rows}</table>'


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], css: str = "bai-table") -> str:
    head = "".join(f'<th style="text-align:left;padding-right:12px">{esc(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td style="text-align:left;padding-right:12px">{esc(v)}</td>'
                                    for v in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def log_pre(text: str) -> str:
    """A static log box showing its last lines (column-reverse anchors it at the bottom); no
    <pre>, which front ends make a scroll box of its own, and theme colours, not fixed ones."""
    return ('<div class="bai-log" style="max-height:320px;min-height:0;overflow:auto;display:flex;'
            'flex-direction:column-reverse;border:1px solid var(--jp-border-color2,#ccc);'
            'background:var(--jp-layout-color1,transparent);color:var(--jp-content-font-color1,inherit)">'
            '<div class="bai-log-lines" style="margin:4px 6px;font-size:12px;white-space:pre-wrap;'
            'font-family:var(--jp-code-font-family,monospace)">'
            f'{esc(text)}</div></div>')


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _numbers(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points
            if isinstance(y, (int, float)) and not isinstance(y, bool) and math.isfinite(y)]


PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def svg_img(svg: str, alt: str) -> str:
    """An SVG as an <img> data URI: HTML sanitizers (a reopened, untrusted notebook) keep it,
    where they strip inline <svg>."""
    data = base64.b64encode(svg.encode()).decode()
    return f'<img alt="{esc(alt)}" src="data:image/svg+xml;base64,{data}"/>'


def _svg(width: int, height: int, body: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><rect width="{width}" height="{height}" fill="white" '
            f'stroke="#ddd"/>{body}</svg>')


def _polylines(named: Mapping[str, Sequence[tuple[float, float]]], width: int, height: int) -> str:
    """Lines of several series on one scale (one per series, palette colours)."""
    pad = 4
    every = [p for pts in named.values() for p in pts]
    xs, ys = [p[0] for p in every], [p[1] for p in every]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 2 * pad) / ((x1 - x0) or 1)
    sy = (height - 2 * pad) / ((y1 - y0) or 1)
    out = []
    for i, pts in enumerate(named.values()):
        color = PALETTE[i % len(PALETTE)]
        coords = [(pad + (x - x0) * sx, height - pad - (y - y0) * sy) for x, y in pts]
        if len(coords) == 1:
            out.append(f'<circle cx="{coords[0][0]:.1f}" cy="{coords[0][1]:.1f}" r="3" fill="{color}"/>')
        else:
            line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{line}"/>')
    return "".join(out)


def line_chart(name: str, points: Sequence[tuple[float, float]] | None = None,
               series: Mapping[str, Sequence[tuple[float, float]]] | None = None) -> str:
    """A small line chart of (step, value) points, or of several named series (one line each,
    e.g. one per rank or per child run), as an <img> every front end keeps."""
    named = {k: _numbers(v) for k, v in (series or {name: points or []}).items()}
    named = {k: v for k, v in named.items() if v}
    title = f'<div style="font-size:12px;font-weight:600">{esc(name)}</div>'
    if not named:
        return f'<div class="bai-chart" data-metric="{esc(name)}">{title}</div>'
    ys = [p[1] for pts in named.values() for p in pts]
    img = svg_img(_svg(CHART_W, CHART_H, _polylines(named, CHART_W, CHART_H)), f"chart of {name}")
    last = list(named.values())[-1][-1][1]
    scale = (f'<div style="font-size:11px;opacity:0.8">last {fmt_value(last)} · min '
             f'{fmt_value(min(ys))} · max {fmt_value(max(ys))} · {len(ys)} points</div>')
    legend = ""
    if len(named) > 1:
        legend = '<div style="font-size:11px">' + " ".join(
            f'<span style="color:{PALETTE[i % len(PALETTE)]}">&#9632;</span> {esc(k)}'
            for i, k in enumerate(named)) + "</div>"
    return (f'<div class="bai-chart" data-metric="{esc(name)}" style="display:inline-block;'
            f'vertical-align:top;margin:0 12px 8px 0">{title}{img}{scale}{legend}</div>')


def bar_chart(name: str, bars: Sequence[tuple[str, float]], best: str | None = None) -> str:
    """One bar per child run (label, value); the best one in another colour."""
    bars = [(k, float(v)) for k, v in bars if isinstance(v, (int, float)) and math.isfinite(v)]
    title = f'<div style="font-size:12px;font-weight:600">{esc(name)} per child run</div>'
    if not bars:
        return f'<div class="bai-chart" data-metric="{esc(name)}">{title}</div>'
    width, height, pad = max(CHART_W, 18 * len(bars) + 8), CHART_H + 20, 4
    lo, hi = min(0.0, *(v for _, v in bars)), max(0.0, *(v for _, v in bars))
    scale = (height - 2 * pad - 12) / ((hi - lo) or 1)
    step = (width - 2 * pad) / len(bars)
    zero = height - pad - 12 - (0 - lo) * scale
    body = []
    for i, (label, value) in enumerate(bars):
        top = height - pad - 12 - (value - lo) * scale
        y, h = min(top, zero), abs(zero - top) or 1
        color = "#d62728" if label == best else "#1f77b4"
        body.append(f'<rect x="{pad + i * step + 2:.1f}" y="{y:.1f}" width="{max(step - 4, 2):.1f}" '
                    f'height="{h:.1f}" fill="{color}"/><text x="{pad + i * step + step / 2:.1f}" '
                    f'y="{height - 3}" font-size="9" text-anchor="middle">{esc(label)}</text>')
    img = svg_img(_svg(width, height, "".join(body)), f"{name} per child run")
    return (f'<div class="bai-chart bai-chart-children" data-metric="{esc(name)}" '
            f'style="display:inline-block;vertical-align:top;margin:0 12px 8px 0">{title}{img}</div>')


def parallel_coordinates(axes: Sequence[str], rows: Sequence[tuple[str, Sequence[Any]]],
                         best: str | None = None) -> str:
    """Hyperparameters and the primary metric (last axis) of each child run: one line per run
    across one vertical axis per column; text values are spaced evenly on their axis."""
    if len(axes) < 2 or not rows:
        return ""
    width, height, pad, side = max(320, 110 * len(axes)), 150, 16, 40  # side: room for labels
    positions: list[dict[Any, float]] = []
    for i in range(len(axes)):
        values = [r[1][i] for r in rows if r[1][i] is not None and r[1][i] != ""]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and values:
            lo, hi = min(values), max(values)
            positions.append({v: (v - lo) / ((hi - lo) or 1) for v in values})
        else:
            keys = sorted({str(v) for v in values})
            positions.append({k: j / ((len(keys) - 1) or 1) for j, k in enumerate(keys)})
    step = (width - 2 * side) / (len(axes) - 1)
    body = [f'<line x1="{side + i * step:.1f}" y1="{pad}" x2="{side + i * step:.1f}" '
            f'y2="{height - pad}" stroke="#999"/><text x="{side + i * step:.1f}" y="{pad - 4}" '
            f'font-size="10" text-anchor="middle">{esc(a)}</text>' for i, a in enumerate(axes)]
    for label, row_values in rows:
        pts = []
        for i, v in enumerate(row_values):
            where = positions[i].get(v if isinstance(v, (int, float)) and not isinstance(v, bool)
                                     else str(v))
            if where is not None:
                pts.append(f"{side + i * step:.1f},{height - pad - where * (height - 2 * pad):.1f}")
        color = "#d62728" if label == best else "#1f77b4"
        wide = "2.5" if label == best else "1"
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="{wide}" '
                    f'stroke-opacity="0.8" points="{" ".join(pts)}"/>')
    img = svg_img(_svg(width, height, "".join(body)), "parallel coordinates")
    return ('<div class="bai-chart bai-parallel" style="display:inline-block;vertical-align:top;'
            'margin:0 12px 8px 0"><div style="font-size:12px;font-weight:600">hyperparameters vs '
            f'{esc(axes[-1])}</div>{img}</div>')


def metrics_html(series: dict[str, list[tuple[float, float]]], others: dict[str, Any]) -> str:
    """Charts for scalar series with more than one point, and a table of every metric."""
    charts = "".join(line_chart(name, pts) for name, pts in series.items() if len(pts) > 1)
    rows: list[tuple[str, str, int | str]] = []
    for name, pts in series.items():
        vals = [y for _, y in pts]
        rows.append((name, fmt_value(vals[-1]) if vals else "", len(vals)))
    for name, value in others.items():
        rows.append((name, _short(value), ""))
    if not rows:
        return '<div class="bai-metrics" style="color:#777">No metrics logged yet.</div>'
    return (f'<div class="bai-metrics"><div>{charts}</div>'
            f'{table(["metric", "last value", "points"], rows, "bai-metrics-table")}</div>')


def _short(value: Any, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def children_html(rows: Sequence[dict[str, Any]], metric: str | None) -> str:
    if not rows:
        return ""
    columns = ["#", "run id", "status", "started", "ended", "duration", metric or "primary metric"]
    body = [(r["number"], r["id"], r["status"], when(r.get("started")), when(r.get("ended")),
             duration_text(r), fmt_value(r["metric"]) if r.get("metric") is not None else "")
            for r in rows]
    return table(columns, body, "bai-children")


def properties_html(items: Iterable[tuple[str, str]], open_: bool = False) -> str:
    """The properties table folded into a <details> (collapsed unless `open_`): the header line
    already says what a user checks first; it opens without a kernel."""
    flag = " open" if open_ else ""
    return (f'<details class="bai-properties-box"{flag}><summary style="cursor:pointer;'
            f'font-size:12px">Properties</summary>{kv_table(items)}</details>')


def header_facts(row: RunRow) -> list[tuple[str, str]]:
    """(label, text) of the one-line header: duration, cluster, nodes."""
    nodes = [n.get("id", "") for n in row.get("nodes") or []]
    facts = [("duration", duration_text(row)), ("cluster", row.get("cluster") or ""),
             ("nodes", ", ".join(nodes) if len(nodes) <= 3 else f"{len(nodes)} nodes")]
    return [(k, v) for k, v in facts if v]


def facts_html(row: RunRow) -> str:
    return " · ".join(f'<span class="bai-fact" data-fact="{esc(k)}" title="{esc(k)}">{esc(v)}</span>'
                      for k, v in header_facts(row))


def failure_html(error: Mapping[str, Any] | None, stderr_name: str | None = None) -> str:
    """Why a run failed: the error, the exit code of each process, and the failing process's
    last lines (its traceback); empty for a run without an error."""
    if not error:
        return ""
    message = error.get("message", "") if isinstance(error, Mapping) else str(error)
    codes = error.get("exit_codes") or {} if isinstance(error, Mapping) else {}
    lines = error.get("last_lines") or [] if isinstance(error, Mapping) else []
    failed = error.get("failed_process") if isinstance(error, Mapping) else None
    parts = [(f'<div class="bai-failure" style="border-left:4px solid {STATUS_COLORS["Failed"]};'
              f'padding:4px 8px;margin:4px 0"><div><b>Error:</b> <span class="bai-error-message">'
              f'{esc(message)}</span></div>')]
    if codes:
        cells = ", ".join(
            (f"<b>{esc(name)}: {esc(code)}</b>" if name == failed else f"{esc(name)}: {esc(code)}")
            for name, code in codes.items())
        parts.append(f'<div class="bai-exit-codes" style="font-size:12px">exit codes: {cells}</div>')
    if lines:
        where = f" of {stderr_name}" if stderr_name else ""
        parts.append(f'<div style="font-size:12px">last {len(lines)} lines{esc(where)}'
                     f'{esc(f" (process {failed})" if failed else "")}:</div>')
        parts.append(log_pre("\n".join(lines)).replace('class="bai-log"', 'class="bai-log bai-stderr-tail"', 1))
    parts.append("</div>")
    return "".join(parts)

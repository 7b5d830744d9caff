"""HTML fragments for the run view: badge, properties, metric charts and tables, child runs.

Plain functions from data to HTML strings, shared by the live widget (stock ipywidgets.HTML
values) and the static summary a saved notebook keeps. No widget code lives here.
"""
from __future__ import annotations

import datetime as _dt
import html
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import SpecError
from ..records import RunRow
from ..spec import JobSpec

STATUS_COLORS = {
    "Queued": "#6c757d", "Preparing": "#0d6efd", "Running": "#0d6efd", "Finalizing": "#0d6efd",
    "CancelRequested": "#fd7e14", "Completed": "#198754", "Failed": "#dc3545", "Canceled": "#fd7e14",
}
CHART_W, CHART_H = 220, 70


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def badge(status: str) -> str:
    color = STATUS_COLORS.get(status, "#6c757d")
    return (f'<span class="bai-status" data-status="{esc(status)}" style="background:{color};'
            f'color:white;padding:2px 10px;border-radius:10px;font-weight:600">{esc(status)}</span>')


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
    waiting = (row.get("properties") or {}).get("waiting")
    if row["status"] == "Queued" and waiting:  # what the run waits for (unusable nodes' errors)
        items.append(("Waiting", waiting))
    error = row.get("error")
    if error:
        items.append(("Error", error.get("message", "") if isinstance(error, dict) else error))
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
    """A scroll box that stays at the bottom as lines arrive (column-reverse keeps the anchor)."""
    return ('<div class="bai-log" style="max-height:320px;overflow:auto;display:flex;'
            'flex-direction:column-reverse;border:1px solid #ddd;background:#fafafa">'
            f'<pre style="margin:4px;font-size:12px;white-space:pre-wrap">{esc(text)}</pre></div>')


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _numbers(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points
            if isinstance(y, (int, float)) and not isinstance(y, bool) and math.isfinite(y)]


def line_chart(name: str, points: Sequence[tuple[float, float]]) -> str:
    """A small SVG line chart of (step, value) points: renders in every front end."""
    pts = _numbers(points)
    title = f'<div style="font-size:12px;font-weight:600">{esc(name)}</div>'
    if not pts:
        return f'<div class="bai-chart" data-metric="{esc(name)}">{title}</div>'
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = 4
    sx = (CHART_W - 2 * pad) / ((x1 - x0) or 1)
    sy = (CHART_H - 2 * pad) / ((y1 - y0) or 1)
    coords = " ".join(f"{pad + (x - x0) * sx:.1f},{CHART_H - pad - (y - y0) * sy:.1f}" for x, y in pts)
    cx, _, cy = coords.partition(",")
    dots = "" if len(pts) > 1 else f'<circle cx="{cx}" cy="{cy}" r="3" fill="#0d6efd"/>'
    svg = (f'<svg width="{CHART_W}" height="{CHART_H}" viewBox="0 0 {CHART_W} {CHART_H}" '
           f'style="border:1px solid #eee;background:white"><polyline fill="none" stroke="#0d6efd" '
           f'stroke-width="1.5" points="{coords}"/>{dots}</svg>')
    scale = (f'<div style="font-size:11px;color:#555">last {fmt_value(ys[-1])} · min '
             f'{fmt_value(y0)} · max {fmt_value(y1)} · {len(pts)} points</div>')
    return (f'<div class="bai-chart" data-metric="{esc(name)}" style="display:inline-block;'
            f'margin:0 12px 8px 0">{title}{svg}{scale}</div>')


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

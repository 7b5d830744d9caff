"""The static HTML summary of a run: what a saved notebook keeps once the kernel is gone.

No ipywidgets here: Run._repr_html_ uses this module in any process that renders HTML.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import render
from .reader import LogTail, MetricsTail, children_rows

if TYPE_CHECKING:
    from ..run import Run

SUMMARY_LOG_LINES = 20


def run_summary_html(run: Run) -> str:
    """Badge, properties, the last lines of the main log, metrics and child runs."""
    ws = run.workspace
    row = ws.history.run_row(run.id)
    if row is None:
        return f"<div>run {render.esc(run.id)} not found</div>"
    tail = LogTail(run.files_dir / run.main_log())
    tail.read()
    tail.flush()
    lines = tail.text.splitlines()[-SUMMARY_LOG_LINES:]
    metrics = MetricsTail(ws.history, run.id)
    metrics.read()
    kids, names = children_rows(ws.history, run.id, None)
    parts = [
        f'<div class="bai-run-summary" data-run-id="{render.esc(run.id)}">',
        (f'<div style="margin-bottom:6px">{render.badge(row["status"])} '
         f'<b>{render.esc(row["experiment"])}</b> · {render.esc(run.id)}</div>'),
        render.kv_table(render.run_properties(row)),
    ]
    if lines:
        parts.append(f"<div><b>{render.esc(run.main_log())}</b> (last {len(lines)} lines)</div>")
        parts.append(render.log_pre("\n".join(lines)))
    if metrics.series or metrics.others:
        parts.append(render.metrics_html(metrics.series, metrics.others))
    if kids:
        parts.append(render.children_html(kids, names[0] if names else None))
    parts.append("</div>")
    return "".join(parts)

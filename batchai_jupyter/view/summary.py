"""The static HTML summary of a run: what a saved notebook keeps once the kernel is gone.

No ipywidgets here: Run._repr_html_ uses this module in any process that renders HTML.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import render
from .children import read_sweep, sweep_charts_html, sweep_table_html
from .reader import LogTail, MetricsTail
from .terminal import screen_text

if TYPE_CHECKING:
    from ..run import Run

SUMMARY_LOG_LINES = 20


def run_summary_html(run: Run) -> str:
    """Badge, properties, the last lines of the main log (and of a failed run's failing
    process), metrics and child runs."""
    ws = run.workspace
    row = ws.history.run_row(run.id)
    if row is None:
        return f"<div>run {render.esc(run.id)} not found</div>"
    tail = LogTail(run.files_dir / run.main_log())
    tail.read()
    tail.flush()
    lines = screen_text(tail.text).splitlines()[-SUMMARY_LOG_LINES:]  # a progress bar: one line
    metrics = MetricsTail(ws.history, run.id)
    metrics.read()
    sweep = read_sweep(ws.history, run.id)
    parts = [
        f'<div class="bai-run-summary" data-run-id="{render.esc(run.id)}">',
        (f'<div style="margin-bottom:6px">{render.badge(row["status"], sweep.progress())} '
         f'<b>{render.esc(row["experiment"])}</b> · run {render.esc(row["number"])} · '
         f'{render.esc(run.id)} · <span style="font-size:12px">{render.facts_html(row)}</span></div>'),
        render.properties_html(render.run_properties(row)),
    ]
    if lines:
        parts.append(f"<div><b>{render.esc(run.main_log())}</b> (last {len(lines)} lines)</div>")
        parts.append(render.log_pre("\n".join(lines)))
    failing = (row["error"] or {}).get("last_lines") or []
    if failing:  # why it failed: the failing process's last lines (its traceback), stderr first
        process = (row["error"] or {}).get("failed_process")
        parts.append(f"<div><b>Failing process{render.esc(f' {process}' if process else '')}</b> "
                     f"(last {len(failing)} lines)</div>")
        codes = (row["error"] or {}).get("exit_codes") or {}
        if codes:
            parts.append('<div class="bai-exit-codes" style="font-size:12px">exit codes: '
                         + render.esc(", ".join(f"{k}: {v}" for k, v in codes.items())) + "</div>")
        parts.append(render.log_pre("\n".join(failing)))
    if metrics.series or metrics.others:
        parts.append(render.metrics_html(metrics.series, metrics.others))
    if sweep.rows:
        parts.append(sweep_table_html(sweep) + sweep_charts_html(ws.history, sweep))
    parts.append("</div>")
    return "".join(parts)

"""What a saved notebook keeps of a live RunDetails display: its static summary, not the widget.

A widget view names a model that lives only in the kernel that made it. A notebook saved while a
run is live (or right after `RunDetails(run)` of a finished run, or after its kernel died)
would reopen with "Error displaying widget: model not found". Every RunDetails display carries
`VIEW_MARKER` in its output metadata next to a text/html summary; `keep_summaries`, a
jupyter_server pre-save hook, drops the widget view of those outputs so the file holds the
summary. The open document in the browser is not touched: the live view goes on there.

The summary in the output is the one of the moment the view was shown (often "Queued"). Where
the server serves the run's workspace, the hook writes the run's summary as of the save instead
(status, log tail, charts), so a notebook saved mid-run and reopened after its kernel died shows
how far the run had got.

No widget imports: the server extension registers the hook without loading widgets.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: run id -> its summary HTML now, or None where it is not known
Summary = Callable[[str], "str | None"]

#: the output-metadata key a RunDetails display carries (value: {"run": id})
VIEW_MARKER = "batchai_jupyter.run_details"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def marker_metadata(run_id: str) -> dict[str, Any]:
    """The output metadata of a RunDetails display: what the save hook looks for."""
    return {VIEW_MARKER: {"run": run_id}}


def strip_widget_views(notebook: dict[str, Any], summary: Summary | None = None) -> int:
    """Drop the widget view of every marked output that has an HTML summary; returns how many.

    Parameters
    ----------
    notebook: the notebook's JSON content, changed in place.
    summary: gives a run's summary as of now (its HTML then replaces the output's).

    Outputs without the marker (other widgets, a user's own displays) are left as they are."""
    changed = 0
    for cell in notebook.get("cells") or []:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs") or []:
            run_id = _strip(output)
            if run_id is None:
                continue
            changed += 1
            html = _fresh(summary, run_id) if summary is not None and run_id else None
            if html:
                output["data"]["text/html"] = html
    return changed


def _fresh(summary: Summary, run_id: str) -> str | None:
    try:
        return summary(run_id)
    except Exception as exc:  # a busy database, a run deleted: the shown summary stays
        log.warning("batchai_jupyter: no summary of run %s at save: %s", run_id, exc, exc_info=True)
        return None


def _strip(output: Any) -> str | None:
    """The marked output's run id ("" if unnamed) once its view is dropped; None if unmarked."""
    if not isinstance(output, dict) or output.get("output_type") not in ("display_data", "execute_result"):
        return None
    metadata = output.get("metadata")
    data = output.get("data")
    if not isinstance(metadata, dict) or VIEW_MARKER not in metadata or not isinstance(data, dict):
        return None
    if WIDGET_VIEW not in data or "text/html" not in data:
        return None
    del data[WIDGET_VIEW]
    marker = metadata.pop(VIEW_MARKER)
    run_id = marker.get("run") if isinstance(marker, dict) else None
    return run_id if isinstance(run_id, str) else ""


def keep_summaries(model: dict[str, Any], summary: Summary | None = None, **_kwargs: Any) -> None:
    """jupyter_server pre-save hook (`model`, `path`, `contents_manager`): a saved notebook holds
    the summary of each RunDetails display instead of its widget view."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    strip_widget_views(model["content"], summary)


def workspace_summary(workspace: Callable[[], Any]) -> Summary:
    """Summaries read from the workspace `workspace()` gives (None: none, or not its run)."""
    def summary(run_id: str) -> str | None:
        ws = workspace()
        if ws is None or ws.history.run_status(run_id) is None:
            return None
        from ..run import Run
        from ..view.summary import run_summary_html
        return run_summary_html(Run(ws, run_id))
    return summary


def register(contents_manager: Any, workspace: Callable[[], Any] | None = None) -> bool:
    """Add `keep_summaries` to a contents manager's pre-save hooks (jupyter_server 2 keeps a
    list, so a user's own `pre_save_hook` stays); False where the manager has no such list.

    Parameters
    ----------
    contents_manager: the server's contents manager.
    workspace: gives the workspace the server serves (its runs' summaries are written as of
        the save), or None.
    """
    add = getattr(contents_manager, "register_pre_save_hook", None)
    if add is None:
        return False
    add(keep_summaries if workspace is None
        else functools.partial(keep_summaries, summary=workspace_summary(workspace)))
    return True

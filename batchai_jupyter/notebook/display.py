"""How a Run shows itself as a cell's result once `%load_ext batchai_jupyter` ran: the live
RunDetails widget in a kernel, else the static HTML summary.

Run itself knows nothing of this module (it only has `_repr_html_`, the static summary);
`register_display` installs these functions as IPython's display formatters for Run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..run import Run


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets have a front end to talk to)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _live(run: Run) -> bool:
    """A run worth a live view: it or one of its children has not ended yet."""
    from ..view.reader import all_ended
    return not all_ended(run.workspace.history, run.id)


def run_mimebundle(run: Run) -> dict[str, Any] | tuple[dict[str, Any], dict[str, Any]]:
    """Widget view + static HTML summary + text while the run goes on (marked for the save
    hook, with its metadata); the static summary alone once it ended (a saved notebook then
    never holds a widget view a new kernel lacks)."""
    from ..view.summary import run_summary_html
    if in_kernel() and _live(run):
        from .save_hook import marker_metadata
        from .widget import RunDetails
        bundle: dict[str, Any] = RunDetails(run)._repr_mimebundle_()
        return bundle, marker_metadata(run.id)
    return {"text/plain": repr(run), "text/html": run_summary_html(run)}


def display_run(run: Run) -> None:
    """A Run as a cell's result: the live widget in a kernel while it runs (it becomes the
    static summary when the run ends), the static summary otherwise. `RunDetails(run)` shows
    the interactive view of a finished run."""
    from IPython.display import display
    if in_kernel() and _live(run):
        from .widget import RunDetails
        RunDetails(run).show()
    else:
        display(run_mimebundle(run), raw=True)


def register_display(ipython: Any) -> None:
    """Make display_run the display of every Run in this shell (called by load_ipython_extension)."""
    from ..run import Run
    formatter = ipython.display_formatter
    formatter.ipython_display_formatter.for_type(Run, display_run)
    formatter.mimebundle_formatter.for_type(Run, run_mimebundle)


def unregister_display(ipython: Any) -> None:
    from ..run import Run
    formatter = ipython.display_formatter
    for sub in (formatter.ipython_display_formatter, formatter.mimebundle_formatter):
        try:
            sub.pop(Run)
        except KeyError:
            pass

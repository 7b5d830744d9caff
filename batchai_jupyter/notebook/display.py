"""How a Run shows itself as a cell's result: the live widget in a kernel, else static HTML."""
from __future__ import annotations

from typing import Any


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets have a front end to talk to)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def run_mimebundle(run: Any) -> dict[str, Any]:
    """Widget view + static HTML summary + text: each front end picks what it can render."""
    from ..view.summary import run_summary_html
    if in_kernel():
        from .widget import RunDetails
        return RunDetails(run)._repr_mimebundle_()
    return {"text/plain": repr(run), "text/html": run_summary_html(run)}


def display_run(run: Any) -> None:
    """A Run as a cell's result: the live widget in a kernel, the static summary elsewhere."""
    from IPython.display import display
    if in_kernel():
        from .widget import RunDetails
        RunDetails(run).show()
    else:
        display(run_mimebundle(run), raw=True)

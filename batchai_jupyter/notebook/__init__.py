"""The notebook surface: %batchai_* magics, the RunDetails widget and progress bars.

Imported only by kernels: jobs, nodes and the engine never import this package.
`%load_ext batchai_jupyter` calls load_ipython_extension below (through the package root).
"""
from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics, and RunDetails as the display of Run objects."""
    from .display import register_display
    from .magics import register
    from .schedule_magics import register_schedules
    register(ipython)
    register_schedules(ipython)
    register_display(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .display import unregister_display
    unregister_display(ipython)

"""Compute backends, looked up by name and imported only when used.

BACKENDS is the one list of backend names. Other packages add backends through the entry-point
group `batchai_jupyter.backends` (name = "module:Class"); they are merged in lazily, the first
time a name is looked up, and never replace a built-in backend.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ClusterError
from ..history import RunHistory
from ..plugins import BACKEND_GROUP, load_registered, with_entry_points
from .base import DEALLOCATION_OPTIONS, NODE_STATES, Compute, NodeInfo
from .outcomes import Allocation, Evict, Granted, Pending, Refused

ENTRY_POINT_GROUP = BACKEND_GROUP

BACKENDS: dict[str, tuple[str, str, str | None]] = {
    # name: (module, class, extra that provides its dependencies)
    "local": ("batchai_jupyter.compute.local", "LocalCompute", None),
    "ssh": ("batchai_jupyter.compute.ssh", "SSHCompute", None),
    "slurm": ("batchai_jupyter.compute.slurm", "SlurmCompute", None),
}


def _registry() -> dict[str, tuple[str, str, str | None]]:
    """BACKENDS, with the installed entry points merged in (built-in names are never taken over)."""
    return with_entry_points(BACKENDS, ENTRY_POINT_GROUP)


def backend_names() -> tuple[str, ...]:
    """Every backend a cluster may name: the built-in ones, then those of entry points."""
    return tuple(_registry())


def backend_class(name: str) -> type[Compute]:
    registry = _registry()
    if name not in registry:
        raise ClusterError(f"unknown backend {name!r} (valid: {', '.join(registry)})")
    cls = load_registered(registry, name, "backend", ClusterError)
    if not (isinstance(cls, type) and issubclass(cls, Compute)):
        raise ClusterError(f"backend {name!r} ({registry[name][0]}:{registry[name][1]}) "
                           f"is not a Compute class")
    return cls


def make_compute(config: dict[str, Any], workspace_path: Path, history: RunHistory) -> Compute:
    return backend_class(config["backend"])(config, workspace_path, history)


__all__ = ["BACKENDS", "DEALLOCATION_OPTIONS", "ENTRY_POINT_GROUP", "NODE_STATES", "Allocation",
           "Compute", "Evict", "Granted", "NodeInfo", "Pending", "Refused", "backend_class",
           "backend_names", "make_compute"]

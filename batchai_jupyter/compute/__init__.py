"""Compute backends, looked up by name and imported only when used."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ClusterError
from ..plugins import load_registered
from .base import Compute, NodeInfo, NODE_STATES, DEALLOCATION_OPTIONS

BACKENDS: dict[str, tuple[str, str, str | None]] = {
    # name: (module, class, extra that provides its dependencies)
    "local": ("batchai_jupyter.compute.local", "LocalCompute", None),
    "ssh": ("batchai_jupyter.compute.ssh", "SSHCompute", None),
    "slurm": ("batchai_jupyter.compute.slurm", "SlurmCompute", None),
}


def backend_class(name: str) -> type[Compute]:
    if name not in BACKENDS:
        raise ClusterError(f"unknown backend {name!r} (valid: {', '.join(BACKENDS)})")
    return load_registered(BACKENDS, name, "backend", ClusterError)


def make_compute(config: dict[str, Any], workspace_path: Path, history: Any) -> Compute:
    return backend_class(config["backend"])(config, workspace_path, history)


__all__ = ["Compute", "NodeInfo", "NODE_STATES", "DEALLOCATION_OPTIONS", "backend_class", "make_compute"]

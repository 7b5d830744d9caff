"""batchai_jupyter: run jobs from Jupyter on this machine, SSH hosts or Slurm (API.md).

Public names load on first use, so the node agent and the jobs it starts (which import
`batchai_jupyter.node` or `Run`) do not pay for the client's imports.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Workspace": "workspace", "Experiment": "workspace", "Run": "run", "JobSpec": "spec",
    "Cluster": "cluster", "ClusterStatus": "cluster", "NodeInfo": "compute.base",
    "RunDetails": "notebook.widget",
    **{name: "errors" for name in ("BatchAIError", "SpecError", "SnapshotError", "ClusterError",
                                   "ClusterNotFound", "DatastoreError", "RunFailed", "RunNotFound",
                                   "WaitTimeout", "FileNotInRun")},
}

__all__ = [*_EXPORTS, "load_ipython_extension"]

if TYPE_CHECKING:
    from .cluster import Cluster, ClusterStatus
    from .compute.base import NodeInfo
    from .errors import (BatchAIError, ClusterError, ClusterNotFound, DatastoreError, FileNotInRun,
                         RunFailed, RunNotFound, SnapshotError, SpecError, WaitTimeout)
    from .notebook.widget import RunDetails
    from .run import Run
    from .spec import JobSpec
    from .workspace import Experiment, Workspace


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'batchai_jupyter' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    from .notebook.magics import register
    register(ipython)

"""batchai_jupyter: run jobs from Jupyter on this machine, SSH hosts or Slurm (docs/reference/).

Public names load on first use, so the node agent and the jobs it starts (which import
`batchai_jupyter.node` or `Run`) do not pay for the client's imports.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_ERRORS = ("BatchAIError", "SpecError", "SnapshotError", "ClusterError", "ClusterNotFound",
           "ContainerError", "DatastoreError", "RunActive", "RunFailed", "RunNotFound", "WaitTimeout", "FileNotInRun",
           "WorkspaceError", "ModelNotFound")
_EXPORTS: dict[str, str] = {
    "Workspace": "workspace", "Experiment": "workspace", "Run": "run",
    "JobSpec": "spec", "Cluster": "cluster", "ClusterStatus": "cluster",
    "ClusterConfig": "cluster_config", "ClusterSpec": "importers.batchai.cluster",
    "NodeInfo": "compute.base", "WorkspacePaths": "layout",
    "RunDetails": "notebook.widget", "Model": "models", **{name: "errors" for name in _ERRORS},
    "Schedule": "schedules.client", "ScheduleFire": "schedules.client", "ParallelRunConfig": "parallel.config",
}

__all__ = [
    "BatchAIError",
    "Cluster",
    "ClusterConfig",
    "ClusterError",
    "ClusterNotFound",
    "ClusterSpec",
    "ClusterStatus",
    "ContainerError",
    "DatastoreError",
    "Experiment",
    "FileNotInRun",
    "JobSpec",
    "Model",
    "ModelNotFound",
    "NodeInfo",
    "ParallelRunConfig",
    "Run",
    "RunActive",
    "RunDetails",
    "RunFailed",
    "RunNotFound",
    "Schedule",
    "ScheduleFire",
    "SnapshotError",
    "SpecError",
    "WaitTimeout",
    "Workspace",
    "WorkspaceError",
    "WorkspacePaths",
    "load_ipython_extension",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from .cluster import Cluster, ClusterStatus
    from .cluster_config import ClusterConfig
    from .compute.base import NodeInfo
    from .errors import (
        BatchAIError,
        ClusterError,
        ClusterNotFound,
        ContainerError,
        DatastoreError,
        FileNotInRun,
        ModelNotFound,
        RunActive,
        RunFailed,
        RunNotFound,
        SnapshotError,
        SpecError,
        WaitTimeout,
        WorkspaceError,
    )
    from .importers.batchai.cluster import ClusterSpec
    from .layout import WorkspacePaths
    from .models import Model
    from .notebook.widget import RunDetails
    from .parallel.config import ParallelRunConfig
    from .run import Run
    from .schedules.client import Schedule, ScheduleFire
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
    """`%load_ext batchai_jupyter`: the magics, and the live RunDetails widget as the display
    of Run objects (without the extension a Run shows its static HTML summary).

    The notebook package is imported by name, like the public names above: the package root
    depends on none of its faces, so every module may import it (for __version__).
    """
    importlib.import_module(f"{__name__}.notebook").load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    importlib.import_module(f"{__name__}.notebook").unload_ipython_extension(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """jupyter_server finds the REST API of the lab panel here (batchai_jupyter.server)."""
    points: list[dict[str, str]] = importlib.import_module(f"{__name__}.server")._jupyter_server_extension_points()
    return points


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension shipped in the package (labextension/)."""
    return [{"src": "labextension", "dest": "batchai-jupyter-labextension"}]

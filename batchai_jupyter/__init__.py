"""batchai_jupyter: run jobs from Jupyter on this machine, SSH hosts or Slurm (API.md)."""
from __future__ import annotations

from typing import Any

from .cluster import Cluster, ClusterStatus
from .compute.base import NodeInfo
from .errors import (BatchAIError, ClusterError, ClusterNotFound, DatastoreError, FileNotInRun,
                     RunFailed, RunNotFound, SnapshotError, SpecError, WaitTimeout)
from .run import Run
from .spec import JobSpec
from .workspace import Experiment, Workspace

__version__ = "0.1.0"

__all__ = ["Workspace", "Experiment", "Run", "JobSpec", "Cluster", "ClusterStatus", "NodeInfo",
           "RunDetails", "BatchAIError", "SpecError", "SnapshotError", "ClusterError",
           "ClusterNotFound", "DatastoreError", "RunFailed", "RunNotFound", "WaitTimeout",
           "FileNotInRun", "load_ipython_extension"]


def __getattr__(name: str) -> Any:
    if name == "RunDetails":  # imported on use: ipywidgets stays out of jobs and the engine
        from .notebook.widget import RunDetails
        return RunDetails
    raise AttributeError(name)


def load_ipython_extension(ipython: Any) -> None:
    from .notebook.magics import register
    register(ipython)

"""`from azureml.core import Run, Experiment, Workspace, Model` inside a batchai job.

Run is the job's run (Run.get_context()); the others are batchai_jupyter's own, loaded on
first use, for scripts that reach the workspace where the node can see it.
"""
from __future__ import annotations

import importlib
from typing import Any

from .run import Run

__all__ = ["Experiment", "Model", "Run", "Workspace"]
_LAZY = {"Workspace": "batchai_jupyter.workspace", "Experiment": "batchai_jupyter.workspace",
         "Model": "batchai_jupyter.models"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'azureml.core' has no attribute {name!r} in batchai jobs "
                             f"(offered: {', '.join(__all__)})")
    return getattr(importlib.import_module(module), name)

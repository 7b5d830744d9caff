"""`from azureml.core.run import Run` inside a batchai job: the job's run, Azure ML's names."""
from __future__ import annotations

from batchai_jupyter.run_context import JobRun as Run
from batchai_jupyter.run_context import OfflineRun as _OfflineRun

__all__ = ["Run", "_OfflineRun"]

"""Run.get_context(): the run as seen from inside a job, with Azure ML v1's names (docs/migrate.md).

Imports nothing beyond the standard library: it runs on every node inside the user's process.

    channel.py      the records a job writes for the engine (metrics and ops), one JSON line each
    logging_api.py  log, log_list, log_row, log_table, log_image, the schema'd metrics, uploads
    job_run.py      JobRun: tags, properties, status, children; reads; RelatedRun (its parent)
    job_files.py    its files (download_file(s), get_file_names) and register_model
    reader.py       the workspace read-only, where the node can see it
"""
from __future__ import annotations

from .job_files import RegisteredModel
from .job_run import JobExperiment, JobRun, OfflineRun

__all__ = ["JobExperiment", "JobRun", "OfflineRun", "RegisteredModel", "get_context"]


def get_context(allow_offline: bool = True) -> JobRun:
    """The current run inside a job; outside one an offline run that prints."""
    return JobRun.get_context(allow_offline)

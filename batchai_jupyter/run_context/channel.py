"""The records a job writes for the engine: one JSON line each, appended to $BATCHAI_METRICS_FILE.

A record with a `name` and no `op` is a metric (as it always was); a record with an `op` asks
the engine to change the run history: tags, properties, a status, a child run, a model, a file
of a child run. The engine tails the file (engine/tail.py) and applies each op once
(engine/job_records.py). Standard library only: jobs write these on bare nodes.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

#: the kinds of JSON-valued metrics Azure ML v1 logs with a schema ({schema_type, schema_version, data})
SCHEMA_KINDS = ("confusion_matrix", "accuracy_table", "predictions", "residuals")
SCHEMA_VERSION = "1.0.0"
#: the statuses a job may ask for (complete(), fail(), cancel())
REQUESTABLE = ("Completed", "Failed", "Canceled")
#: where a run keeps the properties users add (its other properties are the system's)
USER_PROPERTIES = "user_properties"
#: the run property that says a run has no process of its own (a notebook's or a job's child)
RUN_KIND = "run_kind"


class MetricRecord(TypedDict, total=False):
    """One logged value (`run_id`: a child run's; absent: the job's own run; `rank`: the
    process's rank when the job has several, so each rank's values stay a series of their own)."""

    name: str
    kind: str
    value: Any
    step: int | None
    ts: float
    run_id: str
    rank: int


#: (world size, rank) variables of the launchers a job's processes come from: torch, OpenMPI, PMI
_RANK_VARIABLES = (("WORLD_SIZE", "RANK"), ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
                   ("PMI_SIZE", "PMI_RANK"))


def process_rank(env: Mapping[str, str]) -> int | None:
    """This process's rank among several (None in a job of one process)."""
    for size_key, rank_key in _RANK_VARIABLES:
        size, rank = env.get(size_key, ""), env.get(rank_key, "")
        if size.isdigit() and int(size) > 1 and rank.isdigit():
            return int(rank)
    return None


class TagsRecord(TypedDict):
    op: Literal["tags"]
    run_id: str
    tags: dict[str, str]
    ts: float


class PropertiesRecord(TypedDict):
    op: Literal["properties"]
    run_id: str
    properties: dict[str, str]
    ts: float


class StatusRecord(TypedDict):
    """complete(), fail() or cancel() of the job's run or of one of its children."""

    op: Literal["status"]
    run_id: str
    status: str
    error: dict[str, Any] | None
    ts: float


class ChildRecord(TypedDict):
    """A child run made inside the job (child_run(), create_children()): no process of its own."""

    op: Literal["child"]
    run_id: str
    parent_id: str
    name: str | None
    tags: dict[str, str]
    ts: float


class ModelRecord(TypedDict):
    """register_model(): `path` is in the run's files; the node's copy is under the artifacts."""

    op: Literal["model"]
    run_id: str
    token: str
    name: str
    path: str
    tags: dict[str, str]
    properties: dict[str, str]
    description: str | None
    ts: float


class FileRecord(TypedDict):
    """A file of a child run (upload_file, log_image): `source` is relative to the run folder."""

    op: Literal["file"]
    run_id: str
    name: str
    source: str
    ts: float


OpRecord = TagsRecord | PropertiesRecord | StatusRecord | ChildRecord | ModelRecord | FileRecord


def child_files_dir(run_dir: str, child_id: str) -> str:
    """Where a job keeps a child run's files on its node (copied by the engine, never tailed)."""
    return os.path.join(run_dir, "child-files", child_id)


class Channel:
    """Appends records to the job's metrics file (a lock keeps threads' lines whole)."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()

    def write(self, record: MetricRecord | OpRecord) -> None:
        line = json.dumps(record, default=str) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)

    def size(self) -> int:
        """How many bytes were written so far (the engine has read them all when its offset
        reaches this)."""
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0


def now() -> float:
    return time.time()

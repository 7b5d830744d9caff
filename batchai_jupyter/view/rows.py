"""Rows for tables: runs, clusters, nodes and run files, as the magics, the widget and the CLI
show them. One builder per kind of row; each face picks its columns (and their labels) from
the same fields, so `%batchai_job list` and `batchai job list` can never disagree on a value.
"""
from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunNotFound

if TYPE_CHECKING:
    from ..cluster import Cluster
    from ..compute.base import NodeInfo
    from ..run import Run

# -- times -----------------------------------------------------------------------------------------
_UTC = _dt.timezone(_dt.timedelta(0))  # datetime.UTC is 3.11+


def iso_utc(ts: float | None) -> str | None:
    """Seconds since the epoch -> '2024-05-01T12:00:00.123456Z' (Azure ML's time strings)."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _UTC).isoformat().replace("+00:00", "Z")


def duration_seconds(row: Mapping[str, Any], now: float | None = None) -> float | None:
    """How long a run has run (until now while it runs); None before it started."""
    if row.get("started") is None:
        return None
    return float((row.get("ended") or now or time.time()) - row["started"])


# -- runs ------------------------------------------------------------------------------------------
#: Every field a run row has: the values each face's columns are picked from.
RUN_FIELDS = ("id", "number", "experiment", "cluster", "status", "parent", "submitted", "started",
              "ended", "duration", "tags")
#: `%batchai_job list`: label -> field
MAGIC_RUN_COLUMNS = {"run id": "id", "experiment": "experiment", "#": "number", "cluster": "cluster",
                     "status": "status", "parent": "parent"}
#: `batchai job list|create|show`: label -> field
CLI_RUN_COLUMNS = {"name": "id", "experiment": "experiment", "cluster": "cluster", "status": "status",
                   "submitted": "submitted", "duration": "duration"}


def run_fields(row: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """The fields of one run (a RunHistory row) that tables show."""
    duration = duration_seconds(row, now)
    return {"id": row["id"], "number": row.get("number"), "experiment": row.get("experiment"),
            "cluster": row.get("cluster"), "status": row.get("status"),
            "parent": row.get("parent_id") or "", "submitted": iso_utc(row.get("created")),
            "started": iso_utc(row.get("started")), "ended": iso_utc(row.get("ended")),
            "duration": None if duration is None else round(duration, 1),
            "tags": dict(row.get("tags") or {})}


def pick(fields: Mapping[str, Any], columns: Mapping[str, str]) -> dict[str, Any]:
    """{label: fields[field]} for each (label, field) of `columns`, in that order."""
    return {label: fields.get(name) for label, name in columns.items()}


def run_rows(rows: Iterable[Mapping[str, Any]], columns: Mapping[str, str]) -> list[dict[str, Any]]:
    """Table rows of runs (RunHistory rows) with the given columns (label -> field)."""
    now = time.time()
    return [pick(run_fields(r, now), columns) for r in rows]


def runs_table_rows(runs: Iterable[Run], columns: Mapping[str, str]) -> list[dict[str, Any]]:
    """Table rows of Run objects (ws.runs(...)); a run deleted meanwhile is left out."""
    records = []
    for run in runs:
        try:
            records.append(run.row())
        except RunNotFound:
            continue
    return run_rows(records, columns)


# -- clusters and nodes ----------------------------------------------------------------------------
CLUSTER_COLUMNS = ["name", "backend", "min_nodes", "max_nodes", "nodes", "idle", "running",
                   "unusable", "queued_runs", "allocation_state"]
NODE_COLUMNS = ["id", "address", "state", "gpus", "run_id", "cache_bytes", "run_bytes", "error"]


def cluster_row(cluster: Cluster) -> dict[str, Any]:
    """One cluster with its live node counts and queue (from the workspace)."""
    status = cluster.get_status()
    counts = status.node_state_counts
    return {"name": cluster.name, "backend": cluster.backend, "min_nodes": cluster.min_nodes,
            "max_nodes": cluster.max_nodes, "nodes": status.current_node_count,
            "idle": counts.get("idle", 0), "running": counts.get("running", 0),
            "unusable": counts.get("unusable", 0), "queued_runs": status.queued_runs,
            "allocation_state": status.allocation_state}


def cluster_details(cluster: Cluster) -> dict[str, Any]:
    """cluster_row plus the cluster's other settings and the errors of unusable nodes."""
    row = cluster_row(cluster)
    settings = {k: v for k, v in cluster.config.items() if k not in row}
    return {**row, **settings, "errors": cluster.get_status().errors}


def node_row(node: NodeInfo) -> dict[str, Any]:
    """One node; cache_bytes and run_bytes as the engine last measured them (None: not yet)."""
    got = node.info.get("disk")
    disk: dict[str, Any] = got if isinstance(got, dict) else {}
    return {"id": node.id, "address": node.address, "state": node.state, "gpus": node.gpus,
            "run_id": node.run_id, "cache_bytes": disk.get("cache_bytes"),
            "run_bytes": disk.get("run_bytes"), "error": node.error}


# -- files -----------------------------------------------------------------------------------------
FILE_COLUMNS = ["name", "size"]


def file_rows(files_dir: Path, names: Sequence[str]) -> list[dict[str, Any]]:
    """Run files (names relative to the run's files folder) with their sizes."""
    rows = []
    for name in names:
        try:
            size: int | None = (files_dir / name).stat().st_size
        except OSError:  # removed since it was listed
            size = None
        rows.append({"name": name, "size": size})
    return rows

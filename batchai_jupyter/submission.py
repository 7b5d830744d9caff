"""The one submit pipeline: validate > resolve data > snapshot > secrets > insert.

Every way a run starts goes through `submit()`: Experiment.submit, Run.submit_child, the CLI
(`batchai job create`), the %%batchai_job magic, and later schedules and the lab server. Each
step is a small function, so a caller that needs one step (a dry run, a server's validation)
uses that step alone. Nothing is uploaded or stored before every check has passed; the run is
inserted as Queued last, and the engine takes it from there.
"""
from __future__ import annotations

import secrets as _secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine.control import ensure_engine
from .errors import UNWRITABLE_ERRNOS, SpecError, WorkspaceError
from .snapshot import Progress, Snapshot
from .spec import JobSpec

if TYPE_CHECKING:
    from .cluster import Cluster
    from .workspace import Workspace

__all__ = ["DataRefs", "Progress", "check_experiment_name", "check_tags", "insert", "new_run_id", "resolve_data",
           "store_secrets", "submit", "take_snapshot", "validate"]

#: The resolved data references of a spec: {"inputs"|"outputs"|"mounts": {id: reference dict}}.
DataRefs = dict[str, dict[str, Any]]
_EXPERIMENT_CHARS = "-_."
#: The longest experiment name: it names folders and starts every run id (a file name holds 255).
MAX_EXPERIMENT_NAME = 200


def check_experiment_name(name: object) -> str:
    """An experiment name: letters, digits, '-', '_' and '.' (SpecError otherwise)."""
    valid = f"1..{MAX_EXPERIMENT_NAME} letters, digits, '-', '_' and '.', not '.' or '..'"
    if not isinstance(name, str) or not name or \
            not all(c.isalnum() or c in _EXPERIMENT_CHARS for c in name):
        raise SpecError("experiment", f"{name!r} is not a valid experiment name", valid)
    if name in (".", "..") or len(name) > MAX_EXPERIMENT_NAME:
        shown = name if len(name) <= 40 else f"{name[:40]}... ({len(name)} characters)"
        raise SpecError("experiment", f"{shown!r} is not a valid experiment name", valid)
    return name


def check_tags(tags: object) -> dict[str, str]:
    """Run tags: a dict of string names to string values (SpecError otherwise)."""
    if tags is None:
        return {}
    if not isinstance(tags, Mapping):
        raise SpecError("tags", f"must be a dict of name -> value, got {type(tags).__name__}",
                        "{'lr': '0.1'}")
    for name, value in tags.items():
        if not isinstance(name, str) or not name or "\0" in name:
            raise SpecError("tags", f"tag name {name!r} is not a non-empty string", "{'lr': '0.1'}")
        if not isinstance(value, str) or "\0" in value:
            raise SpecError("tags", f"the value of tag {name!r} is {value!r}, not a string",
                            "string values, e.g. {'lr': '0.1'}")
    return dict(tags)


def _as_bytes(extra_files: Mapping[str, bytes | str] | None) -> dict[str, bytes]:
    return {k: (v.encode() if isinstance(v, str) else v) for k, v in (extra_files or {}).items()}


# -- the steps -------------------------------------------------------------------------------------
def validate(workspace: Workspace, spec: object, cluster: str,
             extra_files: Mapping[str, bytes] | None = None) -> Cluster:
    """The spec is a valid JobSpec for that cluster (SpecError / ClusterNotFound otherwise).

    A script given in extra_files (the %%batchai_job cell body) need not exist on disk yet.
    Returns the target cluster.
    """
    if not isinstance(spec, JobSpec):
        raise SpecError("spec", f"must be a JobSpec, got {type(spec).__name__}")
    target = workspace.cluster(cluster)
    if spec.script and spec.script in (extra_files or {}):
        spec.validate(check_files=False)
        if not Path(spec.source_directory).expanduser().is_dir():
            raise SpecError("source_directory", f"{str(spec.source_directory)!r} does not exist "
                            "or is not a folder", "an existing folder")
    else:
        spec.validate()
    if spec.node_count > target.max_nodes:
        raise SpecError("node_count", f"{spec.node_count} is more than max_nodes={target.max_nodes} "
                        f"of cluster {cluster!r}", f"1..{target.max_nodes}")
    return target


def resolve_data(workspace: Workspace, spec: JobSpec) -> DataRefs | None:
    """Every input, output and mount checked against the workspace's datastores (None: none)."""
    if not spec.has_data:
        return None
    from .datastores import check_job_data
    return check_job_data(workspace, spec)


def take_snapshot(workspace: Workspace, spec: JobSpec, extra_files: Mapping[str, bytes] | None = None,
                  max_bytes: int | None = None, max_files: int | None = None,
                  progress: Progress | None = None) -> Snapshot:
    """Snapshot the source directory into the workspace store (SnapshotError over a limit)."""
    limits = workspace.snapshot_limits
    return workspace.store.take(spec.source_directory,
                                max_bytes=max_bytes or limits["max_bytes"],
                                max_files=max_files or limits["max_files"],
                                extra_files=dict(extra_files or {}), exclude=(workspace.path,),
                                progress=progress)


def new_run_id(experiment: str) -> str:
    """<experiment>_<unix time>_<8 hex digits>: sortable by time, unique without a lock."""
    return f"{experiment}_{int(time.time())}_{_secrets.token_hex(4)}"


def store_secrets(workspace: Workspace, run_id: str, spec: JobSpec) -> None:
    """The run's secret values go to the secrets file only (history.db keeps their names)."""
    if spec.secrets:
        workspace.secrets.put("runs", run_id, {k: str(v) for k, v in spec.secrets.items()})


def insert(workspace: Workspace, run_id: str, experiment: str, cluster: str, spec: JobSpec,
           snapshot: Snapshot, tags: Mapping[str, str] | None = None, parent_id: str | None = None,
           data_refs: DataRefs | None = None) -> None:
    """Record the run as Queued, with its stored spec and its snapshot."""
    stored = spec.to_dict()
    if data_refs is not None:
        stored.update(data_refs)
    workspace.history.insert_run(run_id, experiment, cluster, stored, snapshot.id, dict(tags or {}),
                                 spec.priority_rank, parent_id=parent_id,
                                 properties={"snapshot_files": len(snapshot.files),
                                             "snapshot_bytes": snapshot.total_bytes,
                                             "snapshot_new_files": snapshot.new_files})


# -- the entry -------------------------------------------------------------------------------------
def submit(workspace: Workspace, experiment: str, spec: JobSpec, cluster: str = "local",
           tags: Mapping[str, str] | None = None, *, parent_id: str | None = None,
           extra_files: Mapping[str, bytes | str] | None = None, max_snapshot_bytes: int | None = None,
           max_snapshot_files: int | None = None, progress: Progress | None = None) -> str:
    """Validate, resolve data, snapshot, keep secrets, insert as Queued; returns the run id.

    extra_files: files added to the snapshot (name -> content), e.g. a cell body as the script;
    max_snapshot_*: limits for this submit (default: the workspace's); progress(done, total):
    called while new snapshot bytes are stored. Starts the engine if none runs.
    """
    check_experiment_name(experiment)
    check_tags(tags)
    extra = _as_bytes(extra_files)
    validate(workspace, spec, cluster, extra)
    data_refs = resolve_data(workspace, spec)
    run_id = new_run_id(experiment)
    try:
        snapshot = take_snapshot(workspace, spec, extra, max_snapshot_bytes, max_snapshot_files, progress)
        store_secrets(workspace, run_id, spec)
        try:
            insert(workspace, run_id, experiment, cluster, spec, snapshot, tags, parent_id, data_refs)
        except BaseException:
            workspace.secrets.delete("runs", run_id)
            raise
    except OSError as exc:
        if exc.errno not in UNWRITABLE_ERRNOS:
            raise
        raise WorkspaceError(f"cannot store the run in the workspace {workspace.path}: {exc} "
                             f"(free space on its disk, or make it writable)") from exc
    ensure_engine(workspace.path)
    return run_id

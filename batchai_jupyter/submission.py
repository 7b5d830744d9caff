"""The one submit pipeline: validate > resolve data > snapshot > secrets > insert.

Every way a run starts goes through `submit()`: Experiment.submit, Run.submit_child, the CLI
(`batchai job create`), the %%batchai_job magic, and later schedules and the lab server. Each
step is a small function, so a caller that needs one step (a dry run, a server's validation)
uses that step alone. Nothing is uploaded or stored before every check has passed; the run is
inserted as Queued last, and the engine takes it from there. `submit_many` is the same pipeline
for several specs (run.submit_children), inserting every run in one transaction; `prepare` is
its first half, which a schedule keeps to insert a run at each fire (schedules/firing.py).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .engine.control import ensure_engine, wake_engine
from .errors import UNWRITABLE_ERRNOS, SpecError, WorkspaceError
from .parallel.config import ParallelRunConfig
from .records import NewRun
from .run_ids import new_run_id
from .snapshot import Progress, Snapshot
from .spec import JobSpec

if TYPE_CHECKING:
    from .cluster import Cluster
    from .workspace import Workspace

__all__ = ["DataRefs", "Prepared", "Progress", "check_experiment_name", "check_tags", "insert", "new_run_id",
           "prepare", "resolve_data", "store_secrets", "submit", "submit_many", "take_snapshot", "validate"]
_T = TypeVar("_T")

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


def resolve_data(workspace: Workspace, spec: JobSpec, cluster: Cluster | None = None) -> DataRefs | None:
    """Every input, output and mount checked against the workspace's datastores, plus the
    cluster's mount volumes and the stdOutErrPathPrefix copy (None: the run uses none)."""
    if not spec.has_data and not spec.std_out_err_path_prefix and \
            not (cluster is not None and cluster.settings.options.get("mount_volumes")):
        return None
    from .datastores.reference import resolve_job_data
    return resolve_job_data(workspace, spec, cluster.settings if cluster is not None else None)


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


def store_secrets(workspace: Workspace, run_id: str, spec: JobSpec) -> None:
    """The run's secret values go to the secrets file only (history.db keeps their names)."""
    if spec.secrets:
        workspace.secrets.put("runs", run_id, {k: str(v) for k, v in spec.secrets.items()})


@dataclass
class Prepared:
    """A spec that passed every check, with its data resolved and its folder snapshotted."""

    spec: JobSpec
    cluster: str
    data_refs: DataRefs | None
    snapshot: Snapshot | None  # None: a parent with no process of its own (nothing to run)

    def stored_spec(self) -> dict[str, Any]:
        """The spec as history.db keeps it (with its resolved data references)."""
        stored = self.spec.to_dict()
        if self.data_refs is not None:
            stored.update({k: v for k, v in self.data_refs.items() if k != "properties"})
        return stored

    def snapshot_properties(self) -> dict[str, Any]:
        snap = self.snapshot
        if snap is None:
            return {}
        return {"snapshot_files": len(snap.files), "snapshot_bytes": snap.total_bytes,
                "snapshot_new_files": snap.new_files}

    def new_run(self, run_id: str, experiment: str, tags: Mapping[str, str] | None,
                parent_id: str | None) -> NewRun:
        """The row to insert: Queued, or Running for a parent without a process (parents.py)."""
        props = self.snapshot_properties()
        if self.data_refs is not None:
            from .datastores.reference import run_properties
            props.update(run_properties(self.data_refs, run_id, experiment))
        return NewRun(id=run_id, experiment=experiment, cluster=self.cluster, spec=self.stored_spec(),
                      snapshot=self.snapshot.id if self.snapshot else None, tags=dict(tags or {}),
                      priority=self.spec.priority_rank, parent_id=parent_id, properties=props,
                      status="Queued" if self.spec.has_process else "Running")


def prepare(workspace: Workspace, spec: JobSpec, cluster: str, extra_files: Mapping[str, bytes] | None = None,
            max_snapshot_bytes: int | None = None, max_snapshot_files: int | None = None,
            progress: Progress | None = None, snapshots: dict[str, Snapshot] | None = None) -> Prepared:
    """Validate, resolve data and snapshot one spec (schedules keep the result for each fire).

    snapshots: a cache by source folder, so many specs of one folder (submit_children) take its
    snapshot once; used only for specs without extra files."""
    extra = dict(extra_files or {})
    return _prepare_checked(workspace, spec, validate(workspace, spec, cluster, extra), extra, max_snapshot_bytes,
                            max_snapshot_files, progress, snapshots)


def _prepare_checked(workspace: Workspace, spec: JobSpec, target: Cluster, extra: dict[str, bytes],
                     max_snapshot_bytes: int | None, max_snapshot_files: int | None, progress: Progress | None,
                     snapshots: dict[str, Snapshot] | None) -> Prepared:
    """prepare() of a spec validate() accepted for `target`."""
    cluster = target.name
    data_refs = resolve_data(workspace, spec, target)
    snapshot: Snapshot | None = None
    if spec.has_process:
        key = str(Path(spec.source_directory).expanduser().resolve())
        if snapshots is not None and not extra and key in snapshots:
            snapshot = snapshots[key]
        else:
            snapshot = _unwritable_as_typed(workspace, lambda: take_snapshot(
                workspace, spec, extra, max_snapshot_bytes, max_snapshot_files, progress))
            if snapshots is not None and not extra:
                snapshots[key] = snapshot
    return Prepared(spec, cluster, data_refs, snapshot)


def insert(workspace: Workspace, runs: list[tuple[str, Prepared, NewRun]]) -> None:
    """Store the runs' secrets, then insert their rows in one transaction (all or none)."""
    def store() -> None:
        try:
            for run_id, prepared, _row in runs:
                store_secrets(workspace, run_id, prepared.spec)
            workspace.history.insert_runs([row for _id, _prepared, row in runs])
        except BaseException:
            for run_id, _prepared, _row in runs:
                workspace.secrets.delete("runs", run_id)
            raise
    _unwritable_as_typed(workspace, store)


def _unwritable_as_typed(workspace: Workspace, action: Callable[[], _T]) -> _T:
    """A write the workspace disk refuses is a WorkspaceError."""
    try:
        return action()
    except OSError as exc:
        if exc.errno not in UNWRITABLE_ERRNOS:
            raise
        raise WorkspaceError(f"cannot store the run in the workspace {workspace.path}: {exc} "
                             f"(free space on its disk, or make it writable)") from exc


# -- the entry -------------------------------------------------------------------------------------
def submit(workspace: Workspace, experiment: str, spec: JobSpec | ParallelRunConfig, cluster: str = "local",
           tags: Mapping[str, str] | None = None, *, parent_id: str | None = None,
           extra_files: Mapping[str, bytes | str] | None = None, max_snapshot_bytes: int | None = None,
           max_snapshot_files: int | None = None, progress: Progress | None = None) -> str:
    """Validate, resolve data, snapshot, keep secrets, insert as Queued; returns the run id.

    extra_files: files added to the snapshot (name -> content), e.g. a cell body as the script;
    max_snapshot_*: limits for this submit (default: the workspace's); progress(done, total):
    called while new snapshot bytes are stored. Starts the engine if none runs. A
    ParallelRunConfig is submitted as the JobSpec of its workers (parallel/config.py).
    """
    if isinstance(spec, ParallelRunConfig):
        spec, parallel_files = spec.to_job()
        extra_files = {**parallel_files, **(extra_files or {})}
    return submit_many(workspace, experiment, [spec], cluster, tags, parent_id=parent_id,
                       extra_files=extra_files, max_snapshot_bytes=max_snapshot_bytes,
                       max_snapshot_files=max_snapshot_files, progress=progress)[0]


def submit_many(workspace: Workspace, experiment: str, specs: Sequence[JobSpec], cluster: str = "local",
                tags: Mapping[str, str] | None = None, *, parent_id: str | None = None,
                extra_files: Mapping[str, bytes | str] | None = None, max_snapshot_bytes: int | None = None,
                max_snapshot_files: int | None = None, progress: Progress | None = None) -> list[str]:
    """submit() for several specs: every one is checked before anything is stored, one
    snapshot is taken per source folder, and the runs are inserted in one transaction."""
    check_experiment_name(experiment)
    check_tags(tags)
    if isinstance(specs, (JobSpec, str, bytes)) or not isinstance(specs, Sequence) or not specs:
        raise SpecError("specs", "must be a non-empty list of JobSpec", "[JobSpec(...), ...]")
    extra = _as_bytes(extra_files)
    targets = [validate(workspace, spec, cluster, extra) for spec in specs]  # all checked before any snapshot
    snapshots: dict[str, Snapshot] = {}
    prepared = [_prepare_checked(workspace, spec, target, extra, max_snapshot_bytes, max_snapshot_files, progress,
                                 snapshots) for spec, target in zip(specs, targets)]
    runs = []
    for item in prepared:
        run_id = new_run_id(experiment)
        runs.append((run_id, item, item.new_run(run_id, experiment, tags, parent_id)))
    insert(workspace, runs)
    ensure_engine(workspace.path)
    wake_engine(workspace.path)
    return [run_id for run_id, _item, _row in runs]

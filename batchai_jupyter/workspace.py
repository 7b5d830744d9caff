"""Workspace: a folder that holds run history, snapshots, secrets and the cluster registry.

Its layout is WorkspacePaths' (layout.py); the submit pipeline is submission.py's. Workspace
and Experiment are thin: they hold the pieces and name the public calls (API.md §1, §13).
"""
from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cluster import Cluster, validate_cluster
from .cluster_config import (
    DEFAULT_DEALLOCATION,
    DEFAULT_GPUS_PER_NODE,
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MIN_NODES,
    ClusterConfig,
)
from .engine.control import ensure_engine
from .errors import (
    ClusterError,
    ClusterNotFound,
    DatastoreError,
    RunNotFound,
    SpecError,
)
from .history import RunHistory
from .layout import DEFAULT_DATASTORE, WorkspacePaths
from .run import Run
from .secrets_store import SecretStore
from .snapshot import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, SnapshotStore
from .submission import Progress, check_experiment_name, submit

if TYPE_CHECKING:
    from .datastores.base import Datastore
    from .spec import JobSpec

WORKSPACE_VERSION = 1
#: The `local` cluster a fresh workspace has, in the stored (flat dict) form.
DEFAULT_CLUSTER = ClusterConfig.default_local().to_dict()

TagFilter = Mapping[str, "str | None"] | Sequence[str] | str


class Workspace:
    """The root object of the Python API (API.md §1)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.paths = WorkspacePaths.of(path)
        self.path = self.paths.root
        if not self.paths.is_workspace():
            raise ClusterError(f"{self.path} is not a workspace (no workspace.json); "
                               f"use Workspace.create(path)")
        self.history = RunHistory(self.paths.history_db)
        self.store = SnapshotStore(self.paths.snapshots)
        self.secrets = SecretStore(self.paths.secrets)

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # -- creation and lookup ---------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str] = ".batchai", exist_ok: bool = False,
               name: str | None = None) -> Workspace:
        paths = WorkspacePaths.of(path)
        root = paths.root
        if paths.is_workspace():
            if not exist_ok:
                raise ClusterError(f"a workspace already exists at {root} (pass exist_ok=True)")
            return cls(root)
        paths.create_folders()
        tmp = _unique_tmp(paths.meta_tmp)  # several processes may create the same workspace at once
        tmp.write_text(json.dumps({"name": name or root.parent.name or "workspace",
                                   "version": WORKSPACE_VERSION, "created": time.time(),
                                   "snapshot_limits": {"max_bytes": DEFAULT_MAX_BYTES,
                                                       "max_files": DEFAULT_MAX_FILES}},
                                  indent=2))
        history = RunHistory(paths.history_db)
        local = ClusterConfig.default_local()
        if history.cluster_row(local.name) is None:
            history.put_cluster_config(local)
        if not history.datastore_rows():
            history.put_datastore(DEFAULT_DATASTORE, "local",
                                  {"path": str(paths.datastore_dir(DEFAULT_DATASTORE))}, default=True)
        history.close()
        try:  # last: a half-made workspace is never found; the first finished create() wins
            os.link(tmp, paths.meta)
        except FileExistsError:
            if not exist_ok:
                raise ClusterError(f"a workspace already exists at {root} (pass exist_ok=True)") from None
        except OSError:  # a file system without hard links
            os.replace(tmp, paths.meta)
        finally:
            tmp.unlink(missing_ok=True)
        return cls(root)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None) -> Workspace:
        """BATCHAI_WORKSPACE, else the nearest .batchai/ upward from cwd, else ~/.batchai."""
        if path is not None:
            return cls(path)
        env = os.environ.get("BATCHAI_WORKSPACE")
        if env:
            return cls.create(env, exist_ok=True)
        found = WorkspacePaths.find_upward(os.getcwd())
        if found is not None:
            return cls(found.root)
        return cls.create(WorkspacePaths.home().root, exist_ok=True)

    @property
    def name(self) -> str:
        return str(self._meta().get("name", self.path.parent.name))

    def _meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = json.loads(self.paths.meta.read_text())
        return meta

    def _write_meta(self, meta: dict[str, Any]) -> None:
        tmp = _unique_tmp(self.paths.meta_tmp)
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, self.paths.meta)

    def run_files_dir(self, run_id: str) -> Path:
        """runs/<id>/files/: what the workspace keeps of a run (logs, outputs, artifacts)."""
        return self.paths.run_files(run_id)

    # -- snapshot limits ---------------------------------------------------------------------------
    @property
    def snapshot_limits(self) -> dict[str, int]:
        return dict(self._meta()["snapshot_limits"])

    def set_snapshot_limits(self, max_bytes: int | None = None, max_files: int | None = None) -> None:
        meta = self._meta()
        for key, value in (("max_bytes", max_bytes), ("max_files", max_files)):
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise SpecError(key, f"must be a positive integer, got {value!r}")
                meta["snapshot_limits"][key] = value
        self._write_meta(meta)

    # -- clusters ------------------------------------------------------------------------------------
    def clusters(self) -> list[Cluster]:
        return [Cluster(self, config) for config in self.history.cluster_configs()]

    def cluster(self, name: str) -> Cluster:
        config = self.history.cluster_config(name)
        if config is None or config.deleting:
            raise ClusterNotFound(name, [c.name for c in self.clusters()])
        return Cluster(self, config)

    def create_cluster(self, name: str, backend: str = "local", min_nodes: int = DEFAULT_MIN_NODES,
                       max_nodes: int | None = None,
                       idle_seconds_before_scaledown: int = DEFAULT_IDLE_SECONDS,
                       gpus_per_node: int = DEFAULT_GPUS_PER_NODE, exist_ok: bool = False,
                       node_deallocation_option: str = DEFAULT_DEALLOCATION, **options: Any) -> Cluster:
        """Register a compute target; backend options (hosts=, partition=, ...) go to its backend."""
        existing = self.history.cluster_config(name)
        if existing is not None and not existing.deleting:
            if exist_ok:
                return Cluster(self, existing)
            raise ClusterError(f"cluster {name!r} already exists")
        config = validate_cluster(ClusterConfig.new(
            name, backend, min_nodes, max_nodes, idle_seconds_before_scaledown, gpus_per_node,
            node_deallocation_option, **options))
        self.history.put_cluster_config(config)
        if config.min_nodes:
            ensure_engine(self.path)
        return self.cluster(name)

    # -- datastores ----------------------------------------------------------------------------------
    def datastores(self) -> list[Datastore]:
        from .datastores import datastore_from_record
        return [datastore_from_record(self, r) for r in self.history.datastore_rows()]

    def datastore(self, name: str) -> Datastore:
        from .datastores import datastore_from_record
        for row in self.history.datastore_rows():
            if row["name"] == name:
                return datastore_from_record(self, row)
        known = [r["name"] for r in self.history.datastore_rows()]
        raise DatastoreError(f"datastore {name!r} not found (known datastores: {', '.join(known)})")

    def get_default_datastore(self) -> Datastore:
        from .datastores import datastore_from_record
        rows = self.history.datastore_rows()
        row = next((r for r in rows if r["is_default"]), rows[0] if rows else None)
        if row is None:
            raise DatastoreError("this workspace has no datastore")
        return datastore_from_record(self, row)

    def set_default_datastore(self, name: str) -> None:
        self.datastore(name)
        self.history.set_default_datastore(name)

    def register_datastore(self, name: str, kind: str, **options: Any) -> Datastore:
        from .datastores import register_datastore
        return register_datastore(self, name, kind, **options)

    # -- experiments and runs -------------------------------------------------------------------
    def experiment(self, name: str) -> Experiment:
        """The experiment of that name (created on first use)."""
        check_experiment_name(name)
        if not self.history.has_experiment(name):
            self.history.ensure_experiment(name)
        return Experiment(self, name)

    def experiments(self) -> list[Experiment]:
        return [Experiment(self, n) for n in self.history.experiments()]

    def get_run(self, run_id: str) -> Run:
        if self.history.run_row(run_id) is None:
            raise RunNotFound(f"run {run_id!r} not found in workspace {self.path}")
        ensure_engine(self.path)  # runs that were active need an engine to go on
        return Run(self, run_id)

    def runs(self, experiment: str | Experiment | None = None, status: str | Sequence[str] | None = None,
             parent: str | Run | None = None, tags: TagFilter | None = None,
             limit: int | None = None, *, cluster: str | None = None,
             include_children: bool = True) -> list[Run]:
        """Runs of the workspace, newest first (API.md §13).

        experiment: a name or an Experiment; status: one status or several; parent: a run id or
        Run (its children); tags: {key: value} (value None: the key is set), or key names;
        limit: at most this many; include_children=False: only runs without a parent.
        """
        if isinstance(limit, bool) or (limit is not None and (not isinstance(limit, int) or limit < 1)):
            raise SpecError("limit", f"must be a positive integer or None, got {limit!r}")
        statuses = (status,) if isinstance(status, str) else (tuple(status) if status else None)
        rows = self.history.run_rows(
            experiment=experiment.name if isinstance(experiment, Experiment) else experiment,
            status=statuses, parent_id=parent.id if isinstance(parent, Run) else parent,
            cluster=cluster, limit=limit, tags=_tag_filter(tags), top_level=not include_children)
        return [Run(self, r["id"]) for r in rows]


def _tag_filter(tags: TagFilter | None) -> dict[str, str | None] | None:
    if tags is None:
        return None
    if isinstance(tags, str):
        return {tags: None}
    if isinstance(tags, Mapping):
        return {str(k): (None if v is None else str(v)) for k, v in tags.items()}
    return {str(k): None for k in tags}


class Experiment:
    """A named group of runs; submit() is where a job starts its way (DESIGN.md)."""

    def __init__(self, workspace: Workspace, name: str):
        self.workspace = workspace
        self.name = name

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Experiment) and other.name == self.name \
            and other.workspace.path == self.workspace.path

    def __hash__(self) -> int:
        return hash(self.name)

    def submit(self, spec: JobSpec, cluster: str = "local", tags: dict[str, str] | None = None, *,
               parent_id: str | None = None, extra_files: dict[str, bytes] | None = None,
               max_snapshot_bytes: int | None = None, max_snapshot_files: int | None = None,
               progress: Progress | None = None) -> Run:
        """Validate, snapshot, record the run as Queued and return at once (submission.submit)."""
        run_id = submit(self.workspace, self.name, spec, cluster, tags, parent_id=parent_id,
                        extra_files=extra_files, max_snapshot_bytes=max_snapshot_bytes,
                        max_snapshot_files=max_snapshot_files, progress=progress)
        return Run(self.workspace, run_id)

    def get_runs(self, include_children: bool = False, tags: TagFilter | None = None,
                 status: str | Sequence[str] | None = None, limit: int | None = None) -> list[Run]:
        """This experiment's runs, newest first (Azure ML's name); child runs only when asked."""
        return self.workspace.runs(experiment=self.name, status=status, tags=tags, limit=limit,
                                   include_children=include_children)


def _unique_tmp(path: Path) -> Path:
    """A temporary name next to `path` that no other process or thread writes."""
    return path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")

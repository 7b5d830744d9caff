"""Workspace: a folder that holds run history, snapshots, secrets and the cluster registry.

Its layout is WorkspacePaths' (layout.py); the submit pipeline is submission.py's. Workspace
and Experiment are thin: they hold the pieces and name the public calls (docs/reference/python-api.md).
"""
from __future__ import annotations

import datetime
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
from .engine.control import ensure_engine, notify_engine, wake_engine
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
from .run_query import RunQuery, run_filters
from .schedules.client import ClientPorts, Schedule
from .secrets_store import SecretStore
from .snapshot import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, SnapshotStore
from .submission import Progress, check_experiment_name, submit

if TYPE_CHECKING:
    from .datastores.base import Datastore
    from .interactive import InteractiveRun
    from .models import Model
    from .parallel.config import ParallelRunConfig
    from .retention import PruneResult
    from .spec import JobSpec

WORKSPACE_VERSION = 1
#: The `local` cluster a fresh workspace has, in the stored (flat dict) form.
DEFAULT_CLUSTER = ClusterConfig.default_local().to_dict()

TagFilter = Mapping[str, "str | None"] | Sequence[str] | str


class Workspace:
    """The root object of the Python API (docs/reference/python-api.md)."""

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

    # -- container registries ------------------------------------------------------------------------
    def set_registry_credentials(self, registry: str, username: str, password: str) -> None:
        """Store the credentials jobs use to pull images from a private registry.

        Parameters
        ----------
        registry: the registry's host as image names spell it (``myreg.azurecr.io``, ``host:5000``).
        username, password: kept only in the workspace's secrets file (mode 0600); a node gets
            them for one pull, in a 0600 file it removes afterwards, never on a command line.
        """
        from .spec import image_problem
        for name, value in (("registry", registry), ("username", username), ("password", password)):
            if not isinstance(value, str) or not value:
                raise SpecError(name, "must be a non-empty string")
        if image_problem(f"{registry}/x") or "/" in registry:
            raise SpecError("registry", f"{registry!r} is not a registry host", "e.g. 'myreg.azurecr.io'")
        self.secrets.set_registry(registry, username, password)

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
        """Register a compute target; backend options (hosts=, partition=, ...) go to its backend.

        Batch AI's cluster settings are options too: mount_volumes=[{"datastore": "share",
        "path": "afs"}] (mounted on every node at $AZ_BATCHAI_MOUNT_ROOT/afs before a job starts),
        setup_task="..." (run once per node before its first job) and mount_mode="auto" | "fuse"
        | "staged" (how Azure volumes reach the nodes). ClusterSpec.from_batchai_json(cluster.json)
        gives all of them from a Batch AI cluster.json.
        """
        existing = self.history.cluster_config(name)
        if existing is not None and not existing.deleting:
            if exist_ok:
                return Cluster(self, existing)
            raise ClusterError(f"cluster {name!r} already exists")
        config = validate_cluster(ClusterConfig.new(
            name, backend, min_nodes, max_nodes, idle_seconds_before_scaledown, gpus_per_node,
            node_deallocation_option, **options))
        known = [r["name"] for r in self.history.datastore_rows()]
        for i, volume in enumerate(config.mount_volumes):
            if volume["datastore"] not in known:
                raise SpecError(f"mount_volumes[{i}].datastore", f"datastore {volume['datastore']!r} is not "
                                "registered in this workspace", known)
        self.history.put_cluster_config(config)
        wake_engine(self.path)  # a running engine takes the new cluster now
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

    def prune(self, older_than: float | str | datetime.timedelta | None = None,
              keep_last: int | None = None, experiments: str | Sequence[str] | None = None,
              dry_run: bool = True) -> PruneResult:
        """Free what finished runs hold: their files, and snapshot objects no run needs any more.

        Parameters
        ----------
        older_than: only runs that ended at least this long ago (seconds, a timedelta, or
            '90m', '12h', '7d', '2w'); None: any age.
        keep_last: keep the files of each experiment's newest this many finished runs.
        experiments: only runs of this experiment (or these); None: every experiment.
        dry_run: only report what would go (the default); False removes it.

        Active runs, and snapshots that an active or queued run references, are never touched;
        history rows and metrics stay. Returns a PruneResult with the bytes freed.
        """
        from .retention import prune
        return prune(self, older_than, keep_last, experiments, dry_run)

    def models(self, name: str | None = None) -> list[Model]:
        """Registered models, by name then version (of one name if given)."""
        from .models import Model, registry
        return [Model(self, r["name"], _row=r) for r in registry(self).rows(name)]

    def runs(self, experiment: str | Experiment | None = None, status: str | Sequence[str] | None = None,
             parent: str | Run | None = None, tags: TagFilter | None = None,
             limit: int | None = None, *, cluster: str | None = None,
             include_children: bool = True) -> list[Run]:
        """Runs of the workspace, newest first (docs/architecture.md, run queries).

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

    # -- schedules (docs/schedules.md; schedules/) ------------------------------------------------------
    def create_schedule(self, name: str, spec: JobSpec, cluster: str = "local", experiment: str | None = None,
                        cron: str | None = None, tz: str = "UTC", every: datetime.timedelta | float | None = None,
                        start_at: datetime.datetime | str | float | None = None,
                        end_at: datetime.datetime | str | float | None = None, overlap: str = "skip",
                        catchup: str = "latest", run_on_create: bool = False, code: str = "snapshot",
                        tags: Mapping[str, str] | None = None,
                        extra_files: Mapping[str, bytes | str] | None = None) -> Schedule:
        """A schedule the engine fires: a run of `spec` at every slot of `cron` (or `every`).

        Parameters
        ----------
        name: the schedule's name (letters, digits, '-', '_', '.').
        spec: the JobSpec each fire runs; checked and snapshotted now (code="snapshot"), or its
            folder snapshotted again at each fire (code="live").
        cluster, experiment: where the runs go (experiment defaults to the schedule's name).
        cron, tz: a five-field cron line read in this IANA time zone; or every: a timedelta.
        start_at, end_at: the first slot counted (inclusive) and the last; datetimes (naive = UTC),
            ISO 8601 texts or epoch seconds.
        overlap: a slot while the previous run is active: skip | queue | cancel_previous | allow.
        catchup: slots missed while no engine ran: none | latest | all.
        run_on_create: also start one run now.
        tags: tags of every fired run (each also gets tags["schedule"] = name).
        extra_files: files added to the snapshot (name -> content), e.g. a cell body as the script.
        """
        from .schedules.client import check_name, keep_secrets, new_version, options_from
        from .schedules.clock import now
        from .schedules.store import ScheduleStore
        from .submission import check_tags
        check_name(name)
        options = options_from(cron, tz, every, start_at, end_at, overlap, catchup, code)
        if not isinstance(run_on_create, bool):
            raise SpecError("run_on_create", f"must be True or False, got {run_on_create!r}", [True, False])
        experiment = check_experiment_name(experiment or name)
        check_tags(tags)
        store = ScheduleStore(self.history)
        if store.row(name) is not None:
            raise SpecError("name", f"a schedule named {name!r} exists already",
                            "a new name, or ws.schedule(name).update(...)")
        extra = {k: (v.encode() if isinstance(v, str) else v) for k, v in (extra_files or {}).items()}
        prepared = self._schedule_ports().prepare(spec, cluster, extra)
        version = new_version(self, name, prepared, experiment, options, tags, extra)
        created = now()
        store.create(name, version, "enabled", cursor=created, anchor=created)
        keep_secrets(self, name, 1, spec)
        schedule = self.schedule(name)
        if run_on_create:
            schedule.trigger()
        ensure_engine(self.path)
        wake_engine(self.path)
        return schedule

    def schedules(self) -> list[Schedule]:
        """Every schedule of the workspace, oldest first."""
        from .schedules.store import ScheduleStore
        store = ScheduleStore(self.history)
        if store.has_enabled():
            ensure_engine(self.path)  # an enabled schedule needs an engine (e.g. after a reboot)
        return [Schedule(self, row["name"], self._schedule_ports()) for row in store.rows()]

    def schedule(self, name: str) -> Schedule:
        """The schedule of that name (SpecError naming the schedules there are)."""
        from .schedules.store import ScheduleStore
        store = ScheduleStore(self.history)
        row = store.row(name)
        if row is None:
            raise SpecError("name", f"no schedule named {name!r}", store.names() or "none yet")
        if row["state"] == "enabled":
            ensure_engine(self.path)
        return Schedule(self, name, self._schedule_ports())

    def _schedule_ports(self) -> ClientPorts:
        from .submission import prepare
        return ClientPorts(prepare=lambda spec, cluster, extra: prepare(self, spec, cluster, extra),
                           wake=lambda: notify_engine(self.path))


def _tag_filter(tags: TagFilter | None) -> dict[str, str | None] | None:
    if tags is None:
        return None
    if isinstance(tags, str):
        return {tags: None}
    if isinstance(tags, Mapping):
        return {str(k): (None if v is None else str(v)) for k, v in tags.items()}
    return {str(k): None for k in tags}


class Experiment:
    """A named group of runs; submit() is where a job starts its way (docs/architecture.md)."""

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

    def submit(self, spec: JobSpec | ParallelRunConfig, cluster: str = "local", tags: dict[str, str] | None = None, *,
               parent_id: str | None = None, extra_files: dict[str, bytes] | None = None,
               max_snapshot_bytes: int | None = None, max_snapshot_files: int | None = None,
               progress: Progress | None = None) -> Run:
        """Validate, snapshot, record the run as Queued and return at once (submission.submit)."""
        run_id = submit(self.workspace, self.name, spec, cluster, tags, parent_id=parent_id,
                        extra_files=extra_files, max_snapshot_bytes=max_snapshot_bytes,
                        max_snapshot_files=max_snapshot_files, progress=progress)
        return Run(self.workspace, run_id)

    def start_logging(self, snapshot_directory: str | os.PathLike[str] | None = None,
                      outputs: str | None = None, **azureml_options: Any) -> InteractiveRun:
        """An interactive run logged from this notebook, no job (Azure ML's start_logging).

        Parameters: snapshot_directory, a folder kept with the run as its snapshot (None:
        none). The run is Running until run.complete() (or fail(), cancel()) ends it."""
        from .interactive import start_logging
        return start_logging(self, snapshot_directory, outputs, **azureml_options)

    def get_runs(self, include_children: bool = False, tags: TagFilter | None = None,
                 status: str | Sequence[str] | None = None, limit: int | None = None) -> RunQuery:
        """This experiment's runs, newest first (Azure ML's name); child runs only when asked.

        Read lazily, a page at a time, like Azure ML's generator: loop over it, call `next()` on
        it for the newest run, or take `len()` / `list()` of it.

        Parameters
        ----------
        include_children: also runs that have a parent (sweep children).
        tags: {key: value} (value None: the key is set), or key names.
        status: one status or several.
        limit: at most this many runs.
        """
        if isinstance(limit, bool) or (limit is not None and (not isinstance(limit, int) or limit < 1)):
            raise SpecError("limit", f"must be a positive integer or None, got {limit!r}")
        return RunQuery(self.workspace, run_filters(self.name, status, _tag_filter(tags), include_children),
                        limit)


def _unique_tmp(path: Path) -> Path:
    """A temporary name next to `path` that no other process or thread writes."""
    return path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")

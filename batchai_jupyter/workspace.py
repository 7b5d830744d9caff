"""Workspace: a folder that holds run history, snapshots, secrets and the cluster registry.

    .batchai/
      workspace.json   name, version, snapshot limits
      history.db       runs, metrics, clusters, nodes, datastores (SQLite, WAL)
      secrets.json     credentials and run secrets (mode 0600)
      snapshots/       content-addressed objects + manifests + hash cache
      runs/<id>/files/ logs, outputs and artifacts of each run (what clients read)
      clusters/<name>/ folders of local nodes
"""
from __future__ import annotations

import json
import os
import secrets as _secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .cluster import Cluster, validate_cluster_config
from .engine.control import ensure_engine
from .errors import ClusterError, ClusterNotFound, DatastoreError, RunNotFound, SpecError
from .history import PRIORITIES, RunHistory
from .secrets_store import SecretStore
from .snapshot import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, SnapshotStore

if TYPE_CHECKING:
    from .run import Run
    from .spec import JobSpec

WORKSPACE_VERSION = 1
DEFAULT_CLUSTER = {"backend": "local", "min_nodes": 0, "max_nodes": 2,
                   "idle_seconds_before_scaledown": 120, "gpus_per_node": 0}


class Workspace:
    """The root object of the Python API (API.md §1)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser().resolve()
        if not (self.path / "workspace.json").exists():
            raise ClusterError(f"{self.path} is not a workspace (no workspace.json); "
                               f"use Workspace.create(path)")
        self.history = RunHistory(self.path / "history.db")
        self.store = SnapshotStore(self.path / "snapshots")
        self.secrets = SecretStore(self.path / "secrets.json")

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # -- creation and lookup ---------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike[str] = ".batchai", exist_ok: bool = False,
               name: str | None = None) -> "Workspace":
        root = Path(path).expanduser().resolve()
        if (root / "workspace.json").exists():
            if not exist_ok:
                raise ClusterError(f"a workspace already exists at {root} (pass exist_ok=True)")
            return cls(root)
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("snapshots", "runs", "clusters", "datastores/workspacestore"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        tmp = root / "workspace.json.tmp"
        tmp.write_text(json.dumps({"name": name or root.parent.name or "workspace",
                                   "version": WORKSPACE_VERSION, "created": time.time(),
                                   "snapshot_limits": {"max_bytes": DEFAULT_MAX_BYTES,
                                                       "max_files": DEFAULT_MAX_FILES}}, indent=2))
        history = RunHistory(root / "history.db")
        if history.cluster_row("local") is None:
            history.put_cluster("local", "local", {k: v for k, v in DEFAULT_CLUSTER.items() if k != "backend"})
        if not history.datastore_rows():
            history.put_datastore("workspacestore", "local",
                                  {"path": str(root / "datastores" / "workspacestore")}, default=True)
        history.close()
        os.replace(tmp, root / "workspace.json")  # last: a half-made workspace is never found
        return cls(root)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None) -> "Workspace":
        """BATCHAI_WORKSPACE, else the nearest .batchai/ upward from cwd, else ~/.batchai."""
        if path is not None:
            return cls(path)
        env = os.environ.get("BATCHAI_WORKSPACE")
        if env:
            return cls.create(env, exist_ok=True)
        here = Path.cwd().resolve()
        for folder in (here, *here.parents):
            if (folder / ".batchai" / "workspace.json").exists():
                return cls(folder / ".batchai")
        return cls.create(Path.home() / ".batchai", exist_ok=True)

    @property
    def name(self) -> str:
        return self._meta().get("name", self.path.parent.name)

    def _meta(self) -> dict[str, Any]:
        return json.loads((self.path / "workspace.json").read_text())

    def run_files_dir(self, run_id: str) -> Path:
        return self.path / "runs" / run_id / "files"

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
        tmp = self.path / "workspace.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, self.path / "workspace.json")

    # -- clusters ------------------------------------------------------------------------------------
    def clusters(self) -> list[Cluster]:
        return [Cluster(self, row) for row in self.history.cluster_rows() if not row.get("deleting")]

    def cluster(self, name: str) -> Cluster:
        row = self.history.cluster_row(name)
        if row is None or row.get("deleting"):
            raise ClusterNotFound(name, [c.name for c in self.clusters()])
        return Cluster(self, row)

    def create_cluster(self, name: str, backend: str = "local", min_nodes: int = 0,
                       max_nodes: int | None = None, idle_seconds_before_scaledown: int = 120,
                       gpus_per_node: int = 0, exist_ok: bool = False, **options: Any) -> Cluster:
        existing = self.history.cluster_row(name)
        if existing is not None and not existing.get("deleting"):
            if exist_ok:
                return Cluster(self, existing)
            raise ClusterError(f"cluster {name!r} already exists")
        if max_nodes is None:
            max_nodes = len(options.get("hosts") or []) if backend == "ssh" else max(1, min_nodes)
        config = validate_cluster_config({
            "name": name, "backend": backend, "min_nodes": min_nodes, "max_nodes": max_nodes,
            "idle_seconds_before_scaledown": idle_seconds_before_scaledown,
            "gpus_per_node": gpus_per_node, **options})
        self.history.put_cluster(name, backend, {k: v for k, v in config.items()
                                                 if k not in ("name", "backend")})
        if min_nodes:
            ensure_engine(self.path)
        return self.cluster(name)

    # -- datastores ----------------------------------------------------------------------------------
    def datastores(self) -> list[Any]:
        from .datastores import datastore_from_record
        return [datastore_from_record(self, r) for r in self.history.datastore_rows()]

    def datastore(self, name: str) -> Any:
        from .datastores import datastore_from_record
        for row in self.history.datastore_rows():
            if row["name"] == name:
                return datastore_from_record(self, row)
        known = [r["name"] for r in self.history.datastore_rows()]
        raise DatastoreError(f"datastore {name!r} not found (known datastores: {', '.join(known)})")

    def get_default_datastore(self) -> Any:
        from .datastores import datastore_from_record
        rows = self.history.datastore_rows()
        row = next((r for r in rows if r["is_default"]), rows[0] if rows else None)
        if row is None:
            raise DatastoreError("this workspace has no datastore")
        return datastore_from_record(self, row)

    def set_default_datastore(self, name: str) -> None:
        self.datastore(name)
        self.history.set_default_datastore(name)

    def register_datastore(self, name: str, kind: str, **options: Any) -> Any:
        from .datastores import register_datastore
        return register_datastore(self, name, kind, **options)

    # -- experiments and runs -------------------------------------------------------------------
    def experiment(self, name: str) -> "Experiment":
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
            raise SpecError("experiment", f"{name!r} is not a valid experiment name",
                            "letters, digits, '-', '_' and '.'")
        self.history.ensure_experiment(name)
        return Experiment(self, name)

    def experiments(self) -> list["Experiment"]:
        return [Experiment(self, n) for n in self.history.experiments()]

    def get_run(self, run_id: str) -> "Run":
        from .run import Run
        if self.history.run_row(run_id) is None:
            raise RunNotFound(f"run {run_id!r} not found in workspace {self.path}")
        ensure_engine(self.path)  # runs that were active need an engine to go on
        return Run(self, run_id)


class Experiment:
    """A named group of runs; submit() is where a job starts its way (DESIGN.md)."""

    def __init__(self, workspace: Workspace, name: str):
        self.workspace = workspace
        self.name = name

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r})"

    def submit(self, spec: "JobSpec", cluster: str = "local", tags: dict[str, str] | None = None, *,
               parent_id: str | None = None, extra_files: dict[str, bytes] | None = None,
               max_snapshot_bytes: int | None = None, max_snapshot_files: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> "Run":
        """Validate, snapshot, record the run as Queued and return at once."""
        from .run import Run
        from .spec import JobSpec
        if not isinstance(spec, JobSpec):
            raise SpecError("spec", f"must be a JobSpec, got {type(spec).__name__}")
        ws = self.workspace
        target = ws.cluster(cluster)
        extra = {k: (v.encode() if isinstance(v, str) else v) for k, v in (extra_files or {}).items()}
        if spec.script and spec.script in extra:
            spec.validate(check_files=False)
            if not Path(spec.source_directory).expanduser().is_dir():
                raise SpecError("source_directory", f"{str(spec.source_directory)!r} does not exist "
                                "or is not a folder", "an existing folder")
        else:
            spec.validate()
        if spec.node_count > target.max_nodes:
            raise SpecError("node_count", f"{spec.node_count} is more than max_nodes={target.max_nodes} "
                            f"of cluster {cluster!r}", f"1..{target.max_nodes}")
        data_refs = None
        if spec.inputs or spec.outputs or spec.mounts:
            from .datastores import check_job_data
            data_refs = check_job_data(ws, spec)
        limits = ws.snapshot_limits
        snap = ws.store.take(spec.source_directory,
                             max_bytes=max_snapshot_bytes or limits["max_bytes"],
                             max_files=max_snapshot_files or limits["max_files"],
                             extra_files=extra, exclude=(ws.path,), progress=progress)
        run_id = f"{self.name}_{int(time.time())}_{_secrets.token_hex(4)}"
        if spec.secrets:
            ws.secrets.put("runs", run_id, {k: str(v) for k, v in spec.secrets.items()})
        stored = spec.to_dict()
        if data_refs is not None:
            stored.update(data_refs)
        ws.history.insert_run(run_id, self.name, cluster, stored, snap.id, dict(tags or {}),
                              PRIORITIES[spec.priority], parent_id=parent_id,
                              properties={"snapshot_files": len(snap.files),
                                          "snapshot_bytes": snap.total_bytes,
                                          "snapshot_new_files": snap.new_files})
        ensure_engine(ws.path)
        return Run(ws, run_id)

    def get_runs(self, include_children: bool = False) -> list["Run"]:
        from .run import Run
        rows = self.workspace.history.run_rows(experiment=self.name)
        return [Run(self.workspace, r["id"]) for r in rows if include_children or not r["parent_id"]]

"""WorkspacePaths: the one place that knows how a workspace folder is laid out.

    .batchai/
      workspace.json        name, version, snapshot limits
      history.db            runs, metrics, clusters, nodes, datastores (SQLite, WAL)
      secrets.json          credentials and run secrets (mode 0600)
      snapshots/            content-addressed objects + manifests + hash cache
      runs/<id>/files/      logs, outputs and artifacts of each run (what clients read)
      clusters/<name>/      folders of a cluster's local nodes (nodes/<node>/, shared/)
      datastores/workspacestore/   the default datastore (a local folder)
      models/<name>/<version>/     registered models' files
      engine.lock, engine.json, engine.log   the engine's lock, its pid file and its log

Standard library only, so every process (client, engine, backend) can use it. Modelled on
submitit's `JobPaths`: properties and small methods, no I/O except `create_folders`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: The folder name `Workspace.from_config()` looks for upward from the current folder.
WORKSPACE_DIRNAME = ".batchai"
#: The name of the datastore every workspace starts with (a folder inside the workspace).
DEFAULT_DATASTORE = "workspacestore"


@dataclass(frozen=True)
class WorkspacePaths:
    """Paths of one workspace folder; `root` is absolute once built through `of()`."""

    root: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> WorkspacePaths:
        """The layout of the workspace at `path` (expanded and made absolute)."""
        return cls(Path(path).expanduser().resolve())

    # -- files at the top ------------------------------------------------------------------------
    @property
    def meta(self) -> Path:
        """workspace.json: written last when a workspace is made (its presence marks one)."""
        return self.root / "workspace.json"

    @property
    def meta_tmp(self) -> Path:
        return self.root / "workspace.json.tmp"

    @property
    def history_db(self) -> Path:
        return self.root / "history.db"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.json"

    @property
    def engine_lock(self) -> Path:
        return self.root / "engine.lock"

    @property
    def engine_info(self) -> Path:
        return self.root / "engine.json"

    @property
    def engine_spawned(self) -> Path:  # its mtime: when a client last started an engine
        return self.root / "engine.spawned"

    @property
    def engine_log(self) -> Path:
        return self.root / "engine.log"

    @property
    def wake_dir(self) -> Path:
        """Clients touch a file here after a submit or an intent; the engine watches it."""
        return self.root / "wake"

    # -- folders ---------------------------------------------------------------------------------
    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def snapshot_objects(self) -> Path:
        return self.snapshots / "objects"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        """runs/<id>/: everything the workspace keeps of one run."""
        return self.runs / run_id

    def run_files(self, run_id: str) -> Path:
        """runs/<id>/files/: the run's logs, outputs and artifacts (what clients read)."""
        return self.run_dir(run_id) / "files"

    @property
    def clusters(self) -> Path:
        return self.root / "clusters"

    def cluster_dir(self, name: str) -> Path:
        """clusters/<name>/: the folders of a cluster's nodes on this machine."""
        return self.clusters / name

    def node_dir(self, cluster: str, node_id: str) -> Path:
        """clusters/<name>/nodes/<node>/: one local node's folder."""
        return self.cluster_dir(cluster) / "nodes" / node_id

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model_dir(self, name: str, version: int) -> Path:
        """models/<name>/<version>/: the files of one registered model version."""
        return self.models / name / str(version)

    @property
    def datastores(self) -> Path:
        return self.root / "datastores"

    def datastore_dir(self, name: str = DEFAULT_DATASTORE) -> Path:
        """datastores/<name>/: a datastore kept inside the workspace (the default one)."""
        return self.datastores / name

    # -- helpers ---------------------------------------------------------------------------------
    def is_workspace(self) -> bool:
        return self.meta.exists()

    def folders(self) -> tuple[Path, ...]:
        """The folders a new workspace gets."""
        return (self.snapshots, self.runs, self.clusters, self.datastore_dir(DEFAULT_DATASTORE))

    def create_folders(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in self.folders():
            folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def find_upward(cls, start: str | os.PathLike[str]) -> WorkspacePaths | None:
        """The nearest `.batchai/` workspace in `start` or a folder above it."""
        here = Path(start).expanduser().resolve()
        for folder in (here, *here.parents):
            paths = cls(folder / WORKSPACE_DIRNAME)
            if paths.is_workspace():
                return paths
        return None

    @classmethod
    def home(cls) -> WorkspacePaths:
        """~/.batchai: the embedded default workspace."""
        return cls.of(Path.home() / WORKSPACE_DIRNAME)

"""RunManifest: the one thing the engine hands a node agent (runs/<key>/run.json, mode 0600).

Standard library and spec.py only: it is read on bare GPU nodes. The engine builds a RunManifest
and writes `to_json()`; the agent reads it back with `RunManifest.from_json`, which refuses a
manifest newer than the code on the node instead of guessing at fields it does not know.
MANIFEST_VERSION goes up when an older agent would run a manifest wrongly; an optional field
an older agent may ignore (it does without it, as `snapshot.tree`) leaves it as it is.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

from ..errors import BatchAIError, SpecError
from ..spec import JobSpec
from .paths import RunPaths

MANIFEST_VERSION = 2  # 2: the snapshot's files may be in a listing beside the manifest
DEFAULT_KILL_GRACE_SECONDS = 10.0  # TERM -> KILL on cancel, wall clock or a failed peer

DataEntry = dict[str, Any]
"""One data reference as datastores.credentials.node_data_config narrows it for a node: the
reference (datastore, path, mode, path_on_compute, path_suffix) plus name, kind, config,
credential and, for outputs, destination. Its config/credential shapes belong to the kind."""


class DataConfig(TypedDict, total=False):
    """The data section: every input, output and mount with its own narrowed credential."""

    run_id: str
    inputs: dict[str, DataEntry]
    outputs: dict[str, DataEntry]
    mounts: dict[str, DataEntry]
    cluster_mounts: dict[str, DataEntry]   # the cluster's mount volumes: path below AZ_BATCHAI_MOUNT_ROOT
    stdouterr: DataEntry                   # stdOutErrPathPrefix: a datastore entry or {local_path}


def data_config(value: Mapping[str, Any]) -> DataConfig:
    """The typed data section from its JSON-shaped value (node_data_config's, or run.json's)."""
    def entries(kind: str) -> dict[str, DataEntry]:
        return {str(k): dict(v) for k, v in (value.get(kind) or {}).items()}
    out: DataConfig = {"inputs": entries("inputs"), "outputs": entries("outputs"),
                       "mounts": entries("mounts")}
    if value.get("cluster_mounts"):
        out["cluster_mounts"] = entries("cluster_mounts")
    if value.get("stdouterr"):
        out["stdouterr"] = dict(value["stdouterr"])
    if value.get("run_id") is not None:
        out["run_id"] = str(value["run_id"])
    return out


class ContainerConfig(TypedDict, total=False):
    """The container the run's processes run in on each node (node/container.py reads it):
    the image (the spec's, else the cluster's), the cluster's runtime and its extra arguments,
    and the registry credentials for the image (only in memory once the agent read it)."""

    runtime: str
    image: str
    runtime_args: list[str] | None   # None: the node decides (podman: --runtime runc where found)
    auth: dict[str, str]             # {"registry", "username", "password"}


class JobUser(TypedDict):
    """The unprivileged account a node's agent (running as root) starts the job's processes as."""

    name: str
    uid: int
    gid: int


class ManifestExtras(TypedDict, total=False):
    """The RunManifest fields the engine adds per run besides the run's own (Engine.launch_extras)."""

    kill_grace_seconds: float
    job_user: JobUser | None
    data: DataConfig | None
    setup_task: str | None
    container: ContainerConfig | None


def container_config(value: Mapping[str, Any]) -> ContainerConfig:
    """The typed container section from its JSON-shaped value."""
    out = ContainerConfig(runtime=str(value["runtime"]), image=str(value["image"]))
    args = value.get("runtime_args")
    out["runtime_args"] = None if args is None else [str(a) for a in args]
    if value.get("auth"):
        out["auth"] = {str(k): str(v) for k, v in value["auth"].items()}
    return out


class ManifestError(BatchAIError, ValueError):
    """A run manifest this agent cannot run: a newer version, or a missing or malformed field."""


@dataclass(frozen=True)
class ManifestNode:
    """One node of the run, as every node of it sees it (index = its place in RunManifest.nodes)."""

    id: str
    address: str
    gpus: int = 0
    gpu_ids: list[str] = field(default_factory=list)
    root: str = ""   # the node's node_root ("" = the same as the reading node's)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestNode:
        return cls(id=str(data["id"]), address=str(data["address"]), gpus=int(data.get("gpus") or 0),
                   gpu_ids=[str(g) for g in data.get("gpu_ids") or []], root=str(data.get("root") or ""))


FileEntry = tuple[str, int, int]  # content digest, size, mode


class _Listing:
    """A run folder's snapshot.json (the stored manifest's {"files", "links"}), read once, on
    first use: a later run of a snapshot whose tree the node holds reads none of it."""

    def __init__(self, path: str):
        self.path = path
        self._got: tuple[dict[str, FileEntry], dict[str, str]] | None = None

    def get(self) -> tuple[dict[str, FileEntry], dict[str, str]]:
        if self._got is None:
            try:
                with open(self.path, "rb") as fh:
                    data = json.loads(fh.read())
                files = {str(rel): (str(d), int(s), int(m)) for rel, (d, s, m) in data["files"].items()}
                links = {str(k): str(v) for k, v in (data.get("links") or {}).items()}
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                raise ManifestError(f"run manifest: its snapshot listing {self.path} cannot be read "
                                    f"({type(exc).__name__}: {exc})") from None
            self._got = (files, links)
        return self._got


class _Listed(Mapping[str, Any]):
    """The files (part 0) or links (part 1) of a _Listing, as a mapping read when first used;
    equal to another view of the same listing without reading it."""

    def __init__(self, listing: _Listing, part: int):
        self.listing, self.part = listing, part

    def _items(self) -> Mapping[str, Any]:
        return self.listing.get()[self.part]

    def __getitem__(self, key: str) -> Any:
        return self._items()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Listed):
            return (self.listing.path, self.part) == (other.listing.path, other.part)
        return Mapping.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class ManifestSnapshot:
    """The run's source snapshot: relative path -> (digest, size, mode), and symlinks.

    `tree` names the snapshot's tree on the node (node/tree.py): the snapshot id, a digest of
    these files taken once at submit; "" (an older engine's manifest): the agent hashes them.
    `listing`: the engine wrote the files and links beside the manifest (the run folder's
    snapshot.json, the stored manifest as it is) and `files`/`links` read it when first used;
    "" : they are in the manifest itself."""

    files: Mapping[str, FileEntry] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    tree: str = ""
    listing: str = ""

    @classmethod
    def listed(cls, path: str, tree: str) -> ManifestSnapshot:
        """The snapshot whose files and links are in the listing at `path` (read on first use)."""
        listing = _Listing(path)
        return cls(files=_Listed(listing, 0), links=_Listed(listing, 1), tree=tree, listing=path)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        if self.listing:
            return {"tree": self.tree, "listing": self.listing}
        d: dict[str, Any] = {"files": {rel: list(entry) for rel, entry in self.files.items()},
                             "links": dict(self.links)}
        if self.tree:
            d["tree"] = self.tree
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestSnapshot:
        if data.get("listing") and "files" not in data:
            return cls.listed(str(data["listing"]), str(data.get("tree") or ""))
        files = {str(rel): (str(d), int(s), int(m)) for rel, (d, s, m) in data.get("files", {}).items()}
        return cls(files=files, links={str(k): str(v) for k, v in (data.get("links") or {}).items()},
                   tree=str(data.get("tree") or ""))


@dataclass(frozen=True, kw_only=True)
class RunManifest:
    """What one node runs for one run; each field is read by the agent, none by anything else."""

    version: int = MANIFEST_VERSION
    run_id: str
    experiment: str
    run_key: str                 # the run folder's name (node.paths.run_key)
    node_root: str               # this node's folder for runs and objects
    node_index: int              # this node's place in `nodes`
    nodes: list[ManifestNode]
    master_port: int             # torch MASTER_PORT; TensorFlow tasks use the ports above it
    objects_dir: str             # the node's snapshot object cache
    shared_dir: str | None       # a folder every node of the cluster sees, if any
    python: str                  # the node's interpreter for scripts and our own modules
    snapshot: ManifestSnapshot
    spec: JobSpec
    secrets: dict[str, str] = field(default_factory=dict)  # only in memory once the agent read it
    kill_grace_seconds: float = DEFAULT_KILL_GRACE_SECONDS
    data: DataConfig | None = None  # None when the run uses no datastore
    setup_task: str | None = None   # the cluster's node setup command: once per node, before its first job
    container: ContainerConfig | None = None  # None when the run uses no image
    job_user: JobUser | None = None  # None: the job runs as the agent's own user

    # -- derived -------------------------------------------------------------------------------
    @property
    def node(self) -> ManifestNode:
        return self.nodes[self.node_index]

    @property
    def multi_node(self) -> bool:
        return len(self.nodes) > 1

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.node_root, self.run_key)

    def paths_of(self, node: ManifestNode) -> RunPaths:
        """The run folder of another node of the run (its own node_root)."""
        return RunPaths(node.root or self.node_root, self.run_key)

    def without_secrets(self) -> RunManifest:
        """What stays on disk once the agent started: no secrets, no datastore credentials."""
        container = None if self.container is None else \
            ContainerConfig(**{k: v for k, v in self.container.items() if k != "auth"})  # type: ignore[typeddict-item]
        return dataclasses.replace(self, secrets={}, data=None, container=container)

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "version": self.version, "run_id": self.run_id, "experiment": self.experiment,
            "run_key": self.run_key, "node_root": self.node_root, "node_index": self.node_index,
            "nodes": [n.to_dict() for n in self.nodes], "master_port": self.master_port,
            "objects_dir": self.objects_dir, "shared_dir": self.shared_dir, "python": self.python,
            "spec": self.spec.to_dict(), "kill_grace_seconds": self.kill_grace_seconds,
            "snapshot": self.snapshot.to_dict(),
        }
        if self.secrets:
            d["secrets"] = dict(self.secrets)
        if self.data is not None:
            d["data"] = self.data
        if self.setup_task:
            d["setup_task"] = self.setup_task
        if self.container is not None:
            d["container"] = dict(self.container)
        if self.job_user is not None:
            d["job_user"] = dict(self.job_user)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunManifest:
        version = data.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ManifestError(f"run manifest: version {version!r} is not a manifest version")
        if version > MANIFEST_VERSION:
            raise ManifestError(f"run manifest version {version} is newer than this node's "
                                f"batchai_jupyter understands (up to {MANIFEST_VERSION}): install the "
                                "engine's batchai_jupyter version on the node")
        try:
            run_id = str(data["run_id"])
            return cls(
                version=version, run_id=run_id, experiment=str(data["experiment"]),
                run_key=str(data.get("run_key") or run_id), node_root=str(data["node_root"]),
                node_index=int(data["node_index"]),
                nodes=[ManifestNode.from_dict(n) for n in data["nodes"]],
                master_port=int(data["master_port"]), objects_dir=str(data["objects_dir"]),
                shared_dir=data.get("shared_dir") or None, python=str(data["python"]),
                snapshot=ManifestSnapshot.from_dict(data["snapshot"]),
                spec=JobSpec.from_dict(data["spec"]),
                secrets={str(k): str(v) for k, v in (data.get("secrets") or {}).items()},
                kill_grace_seconds=float(data.get("kill_grace_seconds", DEFAULT_KILL_GRACE_SECONDS)),
                data=None if data.get("data") is None else data_config(data["data"]),
                setup_task=str(data["setup_task"]) if data.get("setup_task") else None,
                container=None if data.get("container") is None else container_config(data["container"]),
                job_user=None if not data.get("job_user") else JobUser(
                    name=str(data["job_user"]["name"]), uid=int(data["job_user"]["uid"]),
                    gid=int(data["job_user"]["gid"])),
            )
        except KeyError as exc:
            raise ManifestError(f"run manifest: field {exc.args[0]!r} is missing") from None
        except SpecError as exc:
            raise ManifestError(f"run manifest: its spec cannot be read here ({exc})") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"run manifest: malformed ({type(exc).__name__}: {exc})") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> RunManifest:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ManifestError(f"run manifest: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ManifestError(f"run manifest: a JSON object expected, got {type(data).__name__}")
        return cls.from_dict(data)

"""ClusterConfig: a cluster's settings, typed — the common fields plus the backend's own options.

Standard library only: the engine, every backend and every client read it. Each default of a
cluster lives here, once (DEFAULT_IDLE_SECONDS, DEFAULT_DEALLOCATION, ...).

Stored form (history.db's clusters table, and the dict a backend gets): `to_dict()`, one flat
dict {name, backend, min_nodes, ..., **options} — the shape rows have always had, so
`ClusterConfig.from_dict(history.cluster_row(name))` reads old rows and new ones alike. The
common fields are checked by `check()`; backend options (hosts, partition, ...) are checked by
the backend class (`compute.backend_class(name).validate_config`), see `cluster.validate_cluster`.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SpecError
from .spec import CONTAINER_RUNTIMES, DEFAULT_CONTAINER_RUNTIME, IMAGE_FORMS, MAX_NODES, image_problem

DEFAULT_CLUSTER_NAME = "local"
DEFAULT_BACKEND = "local"
DEFAULT_MIN_NODES = 0
#: max_nodes of the `local` cluster a fresh workspace has.
DEFAULT_LOCAL_MAX_NODES = 2
DEFAULT_IDLE_SECONDS = 120
DEFAULT_GPUS_PER_NODE = 0
DEALLOCATION_OPTIONS = ("requeue", "terminate", "waitforjobcompletion")
DEFAULT_DEALLOCATION = "requeue"
#: how many of a cluster's latest failed runs keep their folders on the nodes (for debugging)
DEFAULT_KEEP_FAILED_RUNS = 3
#: the bound of each node's snapshot cache (objects and trees), in bytes
DEFAULT_NODE_CACHE_BYTES = 10 << 30
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
#: How a cluster's Azure volumes reach its nodes (datastores/mount_mode.py decides "auto").
MOUNT_MODES = ("auto", "fuse", "staged")
_MOUNT_PATH = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")
#: Fields of the flat stored dict that are ClusterConfig fields (everything else is an option).
COMMON_FIELDS = ("name", "backend", "min_nodes", "max_nodes", "idle_seconds_before_scaledown",
                 "gpus_per_node", "node_deallocation_option", "deleting")


@dataclass
class ClusterConfig:
    """One cluster's settings (docs/clusters.md); `options` are the backend's own."""

    name: str
    backend: str = DEFAULT_BACKEND
    min_nodes: int = DEFAULT_MIN_NODES
    max_nodes: int = 0
    idle_seconds_before_scaledown: int = DEFAULT_IDLE_SECONDS
    gpus_per_node: int = DEFAULT_GPUS_PER_NODE
    node_deallocation_option: str = DEFAULT_DEALLOCATION
    #: set by Cluster.delete(): the engine is removing the cluster (clients no longer list it)
    deleting: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    # -- building -----------------------------------------------------------------------------------
    @classmethod
    def new(cls, name: str, backend: str = DEFAULT_BACKEND, min_nodes: int = DEFAULT_MIN_NODES,
            max_nodes: int | None = None, idle_seconds_before_scaledown: int = DEFAULT_IDLE_SECONDS,
            gpus_per_node: int = DEFAULT_GPUS_PER_NODE,
            node_deallocation_option: str = DEFAULT_DEALLOCATION, **options: Any) -> ClusterConfig:
        """What ws.create_cluster() builds; max_nodes=None means one node per listed host
        (ssh's hosts=), else max(1, min_nodes)."""
        if max_nodes is None:
            hosts = options.get("hosts")
            max_nodes = len(hosts) if isinstance(hosts, (list, tuple)) else \
                max(1, min_nodes if isinstance(min_nodes, int) else 1)
        return cls(name=name, backend=backend, min_nodes=min_nodes, max_nodes=max_nodes,
                   idle_seconds_before_scaledown=idle_seconds_before_scaledown,
                   gpus_per_node=gpus_per_node, node_deallocation_option=node_deallocation_option,
                   options=dict(options))

    @classmethod
    def default_local(cls) -> ClusterConfig:
        """The `local` cluster a fresh workspace has (backend local, 0..2 nodes)."""
        return cls(name=DEFAULT_CLUSTER_NAME, backend="local", min_nodes=DEFAULT_MIN_NODES,
                   max_nodes=DEFAULT_LOCAL_MAX_NODES)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterConfig:
        """From a stored row (or `to_dict()`): missing common fields take their defaults."""
        if not isinstance(data, Mapping):
            raise SpecError("cluster", f"must be a dict, got {type(data).__name__}")
        defaults = cls(name="")
        common: dict[str, Any] = {}
        for key in COMMON_FIELDS:
            value = data.get(key)
            common[key] = getattr(defaults, key) if value is None else value
        options = {k: v for k, v in data.items() if k not in COMMON_FIELDS and k != "options"}
        if isinstance(data.get("options"), Mapping):  # a nested form is accepted too
            options.update(data["options"])
        return cls(**common, options=options)

    def to_dict(self) -> dict[str, Any]:
        """The flat dict history.db stores and backends read: common fields plus options."""
        d: dict[str, Any] = {key: getattr(self, key) for key in COMMON_FIELDS if key != "deleting"}
        for key, value in self.options.items():
            if key not in COMMON_FIELDS:
                d[key] = value
        if self.deleting:
            d["deleting"] = True
        return d

    def stored_config(self) -> dict[str, Any]:
        """`to_dict()` without name and backend: the `config` column of the clusters table."""
        return {k: v for k, v in self.to_dict().items() if k not in ("name", "backend")}

    def replace(self, **changes: Any) -> ClusterConfig:
        """A copy with some common fields or options changed (unknown names become options)."""
        names = {f.name for f in dataclasses.fields(self)}
        common = {k: v for k, v in changes.items() if k in names and k != "options"}
        options = dict(self.options, **{k: v for k, v in changes.items() if k not in names})
        if isinstance(changes.get("options"), Mapping):
            options.update(changes["options"])
        return dataclasses.replace(self, **common, options=options)

    # -- checks ---------------------------------------------------------------------------------------
    def check(self, backends: Iterable[str] | None = None) -> ClusterConfig:
        """Raise SpecError naming the first bad common field; return self so calls chain.

        `backends`: the registered backend names (compute.BACKENDS); None skips that check.
        """
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise SpecError("name", f"{self.name!r} is not a valid cluster name",
                            "a letter, then up to 63 letters, digits, '-' or '_'")
        if backends is not None:
            known = tuple(backends)
            if self.backend not in known:
                raise SpecError("backend", f"unknown backend {self.backend!r}", known)
        for key in ("min_nodes", "max_nodes", "idle_seconds_before_scaledown", "gpus_per_node"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SpecError(key, f"must be an integer >= 0, got {value!r}", "0 or more")
        if self.max_nodes > MAX_NODES:
            raise SpecError("max_nodes", f"{self.max_nodes} is more than the limit of {MAX_NODES}",
                            f"0..{MAX_NODES}")
        if self.min_nodes > self.max_nodes:
            raise SpecError("min_nodes", f"{self.min_nodes} is above max_nodes {self.max_nodes}",
                            f"0..{self.max_nodes}")
        if self.node_deallocation_option not in DEALLOCATION_OPTIONS:
            raise SpecError("node_deallocation_option",
                            f"unknown value {self.node_deallocation_option!r}", DEALLOCATION_OPTIONS)
        self._check_container()
        self._check_node_disk()
        self._check_mounts()
        return self

    def _check_mounts(self) -> None:
        """mount_volumes=, setup_task= and mount_mode= (docs/clusters.md, "Mount volumes")."""
        volumes = self.options.get("mount_volumes")
        if volumes is not None:
            self.options["mount_volumes"] = check_mount_volumes(volumes)
        task = self.options.get("setup_task")
        if task is not None and (not isinstance(task, str) or not task.strip() or "\0" in task):
            raise SpecError("setup_task", f"must be a shell command line, got {task!r}",
                            "e.g. 'apt-get install -y unzip'")
        mode = self.options.get("mount_mode")
        if mode is not None and mode not in MOUNT_MODES:
            raise SpecError("mount_mode", f"unknown value {mode!r}", MOUNT_MODES)

    def _check_node_disk(self) -> None:
        """keep_failed_runs= and node_cache_bytes= (docs/clusters.md, "Node disk and retention")."""
        for key in ("keep_failed_runs", "node_cache_bytes"):
            value = self.options.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise SpecError(key, f"must be an integer >= 0, got {value!r}",
                                "0 or more" + (" (bytes)" if key == "node_cache_bytes" else ""))

    @property
    def keep_failed_runs(self) -> int:
        """How many of the cluster's latest failed runs keep their node folders."""
        value = self.options.get("keep_failed_runs")
        return DEFAULT_KEEP_FAILED_RUNS if value is None else int(value)

    @property
    def node_cache_bytes(self) -> int:
        """The bound of each node's snapshot cache (objects and trees), in bytes."""
        value = self.options.get("node_cache_bytes")
        return DEFAULT_NODE_CACHE_BYTES if value is None else int(value)

    def _check_container(self) -> None:
        """container_runtime=, image= and container_runtime_args= (docs/containers.md), when given."""
        runtime = self.options.get("container_runtime")
        if runtime is not None and runtime not in CONTAINER_RUNTIMES:
            raise SpecError("container_runtime", f"unknown value {runtime!r}", CONTAINER_RUNTIMES)
        image = self.options.get("image")
        if image is not None and (not isinstance(image, str) or image_problem(image)):
            problem = image_problem(image) if isinstance(image, str) else "is not a string"
            raise SpecError("image", f"{image!r} {problem}", IMAGE_FORMS)
        args = self.options.get("container_runtime_args")
        if args is not None and not (isinstance(args, (list, tuple)) and all(isinstance(a, str) for a in args)):
            raise SpecError("container_runtime_args", f"must be a list of strings, got {args!r}",
                            "e.g. ['--runtime', 'runc']")

    @property
    def container_runtime(self) -> str:
        """The runtime that runs the cluster's containers (podman unless the cluster names one)."""
        return str(self.options.get("container_runtime") or DEFAULT_CONTAINER_RUNTIME)

    @property
    def image(self) -> str | None:
        """The image of the cluster's jobs that name none (None: such jobs run on the node)."""
        value = self.options.get("image")
        return str(value) if value else None

    # -- typed accessors --------------------------------------------------------------------------
    @property
    def mount_volumes(self) -> list[dict[str, str]]:
        """The datastores mounted on every node at $AZ_BATCHAI_MOUNT_ROOT/<path>."""
        return [dict(v) for v in self.options.get("mount_volumes") or []]

    @property
    def hosts(self) -> list[str]:
        """The listed hosts of a cluster that has them (ssh), else []."""
        hosts = self.options.get("hosts")
        return [str(h) for h in hosts] if isinstance(hosts, (list, tuple)) else []


def check_mount_volumes(volumes: Any) -> list[dict[str, str]]:
    """A cluster's mount_volumes=[{"datastore": NAME, "path": REL}, ...], checked and normalised
    (SpecError naming the item); whether each datastore exists is checked by the workspace."""
    if not isinstance(volumes, (list, tuple)):
        raise SpecError("mount_volumes", f"must be a list, got {type(volumes).__name__}",
                        "[{'datastore': 'share', 'path': 'afs'}]")
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, v in enumerate(volumes):
        if not isinstance(v, Mapping) or set(v) - {"datastore", "path"} or not v.get("datastore"):
            raise SpecError(f"mount_volumes[{i}]", f"{v!r} is not a mount volume",
                            ["{'datastore': NAME, 'path': 'folder below AZ_BATCHAI_MOUNT_ROOT'}"])
        path = str(v.get("path") or v["datastore"]).strip("/")
        if not _MOUNT_PATH.match(path) or any(p in (".", "..") for p in path.split("/")):
            raise SpecError(f"mount_volumes[{i}].path", f"{path!r} is not a relative folder path",
                            "letters, digits, '.', '_', '-' and '/', e.g. 'afs'")
        if path in seen:
            raise SpecError(f"mount_volumes[{i}].path", f"{path!r} is mounted twice", "one volume per path")
        seen.add(path)
        out.append({"datastore": str(v["datastore"]), "path": path})
    return out


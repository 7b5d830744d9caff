"""Cluster: the client's handle on a compute target (create, status, resize, update, delete)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .compute.base import DEALLOCATION_OPTIONS, NODE_STATES, NodeInfo
from .engine.control import ensure_engine
from .errors import ClusterError, SpecError
from .history import ACTIVE_STATUSES

if TYPE_CHECKING:
    from .workspace import Workspace

BACKEND_NAMES = ("local", "ssh", "slurm")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


@dataclass
class ClusterStatus:
    node_state_counts: dict[str, int]
    current_node_count: int
    queued_runs: int
    running_runs: int
    allocation_state: str  # steady | resizing
    errors: list[str] = field(default_factory=list)


def validate_cluster_config(config: dict[str, Any]) -> dict[str, Any]:
    name = config.get("name", "")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError("name", f"{name!r} is not a valid cluster name",
                        "a letter, then up to 63 letters, digits, '-' or '_'")
    if config.get("backend") not in BACKEND_NAMES:
        raise SpecError("backend", f"unknown backend {config.get('backend')!r}", BACKEND_NAMES)
    for key in ("min_nodes", "max_nodes", "idle_seconds_before_scaledown", "gpus_per_node"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SpecError(key, f"must be an integer >= 0, got {value!r}", "0 or more")
    if config["min_nodes"] > config["max_nodes"]:
        raise SpecError("min_nodes", f"{config['min_nodes']} is above max_nodes {config['max_nodes']}",
                        f"0..{config['max_nodes']}")
    option = config.get("node_deallocation_option", "requeue")
    if option not in DEALLOCATION_OPTIONS:
        raise SpecError("node_deallocation_option", f"unknown value {option!r}", DEALLOCATION_OPTIONS)
    from .compute import backend_class
    check = getattr(backend_class(config["backend"]), "validate_config", None)
    if check is not None:
        config = check(config)
    return config


class Cluster:
    """A named compute target of a workspace; every read comes from the workspace."""

    def __init__(self, workspace: "Workspace", config: dict[str, Any]):
        self.workspace = workspace
        self._config = config

    def __repr__(self) -> str:
        return (f"Cluster(name={self.name!r}, backend={self.backend!r}, min_nodes={self.min_nodes}, "
                f"max_nodes={self.max_nodes})")

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    name = property(lambda self: self._config["name"])
    backend = property(lambda self: self._config["backend"])
    min_nodes = property(lambda self: int(self._config.get("min_nodes", 0)))
    max_nodes = property(lambda self: int(self._config.get("max_nodes", 0)))
    idle_seconds_before_scaledown = property(
        lambda self: int(self._config.get("idle_seconds_before_scaledown", 120)))
    gpus_per_node = property(lambda self: int(self._config.get("gpus_per_node", 0)))

    def refresh(self) -> "Cluster":
        row = self.workspace.history.cluster_row(self.name)
        if row is None:
            raise ClusterError(f"cluster {self.name!r} was deleted")
        self._config = row
        return self

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo.from_row(r) for r in self.workspace.history.nodes(self.name)]

    def get_status(self) -> ClusterStatus:
        self.refresh()
        nodes = self.nodes()
        counts = {state: 0 for state in NODE_STATES}
        for node in nodes:
            counts[node.state] = counts.get(node.state, 0) + 1
        runs = self.workspace.history.run_rows(status=ACTIVE_STATUSES, cluster=self.name)
        queued = sum(1 for r in runs if r["status"] == "Queued")
        usable = len(nodes) - counts["unusable"]
        steady = self.min_nodes <= usable <= self.max_nodes and counts["leaving"] == 0
        return ClusterStatus(counts, len(nodes), queued, len(runs) - queued,
                             "steady" if steady else "resizing",
                             [f"{n.id}: {n.error}" for n in nodes if n.state == "unusable"])

    def _save(self, **changes: Any) -> None:
        config = validate_cluster_config(dict(self.refresh()._config, **changes))
        self.workspace.history.put_cluster(self.name, self.backend,
                                           {k: v for k, v in config.items() if k not in ("name", "backend")})
        self.refresh()
        ensure_engine(self.workspace.path)

    def resize(self, target_node_count: int, node_deallocation_option: str = "requeue") -> None:
        """Manual scale: the cluster holds exactly this many nodes (min = max = target)."""
        if isinstance(target_node_count, bool) or not isinstance(target_node_count, int) \
                or target_node_count < 0:
            raise SpecError("target_node_count", f"must be an integer >= 0, got {target_node_count!r}")
        if self.backend == "ssh" and target_node_count > len(self._config.get("hosts", [])):
            raise SpecError("target_node_count", f"{target_node_count} is more than the "
                            f"{len(self._config['hosts'])} hosts of {self.name!r}",
                            f"0..{len(self._config['hosts'])}")
        self._save(min_nodes=target_node_count, max_nodes=target_node_count,
                   node_deallocation_option=node_deallocation_option)

    def update(self, min_nodes: int | None = None, max_nodes: int | None = None,
               idle_seconds_before_scaledown: int | None = None) -> None:
        changes = {k: v for k, v in (("min_nodes", min_nodes), ("max_nodes", max_nodes),
                                     ("idle_seconds_before_scaledown", idle_seconds_before_scaledown))
                   if v is not None}
        self._save(**changes)

    def delete(self, force: bool = False) -> None:
        active = self.workspace.history.run_rows(status=ACTIVE_STATUSES, cluster=self.name)
        if active and not force:
            raise ClusterError(f"cluster {self.name!r} has {len(active)} active run(s) "
                               f"({', '.join(r['id'] for r in active[:3])}); cancel them or use force=True")
        self.workspace.history.add_intent("delete_cluster", self.name)
        self.workspace.history.put_cluster(self.name, self.backend,
                                           {k: v for k, v in dict(self._config, deleting=True).items()
                                            if k not in ("name", "backend")})
        ensure_engine(self.workspace.path)

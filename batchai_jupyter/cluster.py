"""Cluster: the client's handle on a compute target (create, status, resize, update, delete).

Its settings are a ClusterConfig (cluster_config.py); the common fields are checked there and
the backend's own options by the backend class (`validate_config`), in `validate_cluster`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .cluster_config import DEFAULT_DEALLOCATION, ClusterConfig
from .compute.base import NODE_STATES, NodeInfo
from .compute.scale_log import ScaleEvent, ScaleLog
from .engine.control import ensure_engine, wake_engine
from .errors import ClusterError, SpecError
from .history import ACTIVE_STATUSES

if TYPE_CHECKING:
    from .workspace import Workspace


@dataclass
class ClusterStatus:
    node_state_counts: dict[str, int]
    current_node_count: int
    queued_runs: int
    running_runs: int
    allocation_state: str  # steady | resizing
    errors: list[str] = field(default_factory=list)
    #: node id -> {"cache_bytes", "run_bytes", "run_folders", "at"}: what the engine last measured
    node_disk: dict[str, dict[str, float]] = field(default_factory=dict)
    #: the pool's last node added / given back: when, which node, how long it took (None: never)
    last_scale_up: ScaleEvent | None = None
    last_scale_down: ScaleEvent | None = None


def backend_names() -> tuple[str, ...]:
    """The registered backend names (the compute registry is the only list of them)."""
    from .compute import backend_names as registered
    return registered()


def validate_cluster(config: ClusterConfig) -> ClusterConfig:
    """Common fields (SpecError naming the field), then the backend's own options
    (`validate_config` of the backend class, given and returning the flat stored dict)."""
    config.check(backend_names())
    from .compute import backend_class
    return ClusterConfig.from_dict(backend_class(config.backend).validate_config(config.to_dict()))


def validate_cluster_config(config: dict[str, Any]) -> dict[str, Any]:
    """The flat-dict form of validate_cluster (kept for callers that hold a stored row)."""
    return validate_cluster(ClusterConfig.from_dict(config)).to_dict()


class Cluster:
    """A named compute target of a workspace; every read comes from the workspace."""

    def __init__(self, workspace: Workspace, config: ClusterConfig | dict[str, Any]):
        self.workspace = workspace
        self._settings = config if isinstance(config, ClusterConfig) else ClusterConfig.from_dict(config)

    def __repr__(self) -> str:
        return (f"Cluster(name={self.name!r}, backend={self.backend!r}, min_nodes={self.min_nodes}, "
                f"max_nodes={self.max_nodes})")

    @property
    def settings(self) -> ClusterConfig:
        """The typed settings (a copy: change them with update() or resize())."""
        return ClusterConfig.from_dict(self._settings.to_dict())

    @property
    def config(self) -> dict[str, Any]:
        """The settings as the flat dict history.db stores."""
        return self._settings.to_dict()

    @property
    def name(self) -> str:
        return self._settings.name

    @property
    def backend(self) -> str:
        return self._settings.backend

    @property
    def min_nodes(self) -> int:
        return int(self._settings.min_nodes)

    @property
    def max_nodes(self) -> int:
        return int(self._settings.max_nodes)

    @property
    def idle_seconds_before_scaledown(self) -> int:
        return int(self._settings.idle_seconds_before_scaledown)

    @property
    def gpus_per_node(self) -> int:
        return int(self._settings.gpus_per_node)

    @property
    def node_deallocation_option(self) -> str:
        return self._settings.node_deallocation_option

    def refresh(self) -> Cluster:
        config = self.workspace.history.cluster_config(self.name)
        if config is None:
            raise ClusterError(f"cluster {self.name!r} was deleted")
        self._settings = config
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
        scale = ScaleLog(self.workspace.history)
        queued = sum(1 for r in runs if r["status"] == "Queued")
        usable = len(nodes) - counts["unusable"]
        steady = self.min_nodes <= usable <= self.max_nodes and counts["leaving"] == 0
        return ClusterStatus(counts, len(nodes), queued, len(runs) - queued,
                             "steady" if steady else "resizing",
                             [f"{n.id}: {n.error}" for n in nodes if n.state == "unusable"],
                             {n.id: dict(n.info["disk"]) for n in nodes if isinstance(n.info.get("disk"), dict)},
                             scale.last(self.name, "up"), scale.last(self.name, "down"))

    def _save(self, **changes: Any) -> None:
        config = validate_cluster(self.refresh()._settings.replace(**changes))
        self.workspace.history.put_cluster_config(config)
        self.refresh()
        ensure_engine(self.workspace.path)
        wake_engine(self.workspace.path)

    def resize(self, target_node_count: int, node_deallocation_option: str = DEFAULT_DEALLOCATION) -> None:
        """Manual scale: the cluster holds exactly this many nodes (min = max = target)."""
        if isinstance(target_node_count, bool) or not isinstance(target_node_count, int) \
                or target_node_count < 0:
            raise SpecError("target_node_count", f"must be an integer >= 0, got {target_node_count!r}")
        hosts = self._settings.hosts
        if hosts and target_node_count > len(hosts):
            raise SpecError("target_node_count", f"{target_node_count} is more than the "
                            f"{len(hosts)} hosts of {self.name!r}", f"0..{len(hosts)}")
        self._save(min_nodes=target_node_count, max_nodes=target_node_count,
                   node_deallocation_option=node_deallocation_option)

    def update(self, min_nodes: int | None = None, max_nodes: int | None = None,
               idle_seconds_before_scaledown: int | None = None, *,
               keep_failed_runs: int | None = None, node_cache_bytes: int | None = None) -> None:
        """Change settings; keep_failed_runs / node_cache_bytes: docs/clusters.md, node disk."""
        changes = {k: v for k, v in (("min_nodes", min_nodes), ("max_nodes", max_nodes),
                                     ("idle_seconds_before_scaledown", idle_seconds_before_scaledown),
                                     ("keep_failed_runs", keep_failed_runs),
                                     ("node_cache_bytes", node_cache_bytes))
                   if v is not None}
        self._save(**changes)

    def delete(self, force: bool = False) -> None:
        active = self.workspace.history.run_rows(status=ACTIVE_STATUSES, cluster=self.name)
        if active and not force:
            raise ClusterError(f"cluster {self.name!r} has {len(active)} active run(s) "
                               f"({', '.join(r['id'] for r in active[:3])}); cancel them or use force=True")
        self.workspace.history.add_intent("delete_cluster", self.name)
        self.workspace.history.put_cluster_config(self._settings.replace(deleting=True))
        ensure_engine(self.workspace.path)
        wake_engine(self.workspace.path)

"""Compute: which nodes a run gets and how to reach them. One small class per backend.

The engine asks `allocate(run, count)` for a gang of nodes (all or nothing) and gets an
outcome back (`Pending`, `Granted` or `Refused`, see outcomes.py); it launches the node agent
through `launch`, reads and writes node files through `transport(node)`, and calls `maintain()`
each second so a pool can scale up to min_nodes and down after idle time. Every hook the engine
calls is declared here, abstract or with a documented default; a backend never writes run state.

A pool of nodes the engine manages itself (local folders, SSH hosts) derives from NodePool and
fills in `_slots` / `_provision` / `_deprovision` / `transport`; Slurm implements allocate and
release with sbatch.
"""
from __future__ import annotations

import json
import os
import random
import shlex
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..cluster_config import DEALLOCATION_OPTIONS, ClusterConfig
from ..errors import ClusterError, NodeRefused
from ..history import RunHistory
from ..node.cache import DiskReport, DiskRequest
from ..node.manifest import JobUser
from ..records import NodeRow, RunRow
from ..snapshot import SnapshotStore
from .object_push import node_objects, send_objects
from .outcomes import Allocation, Evict, Granted, Pending, Refused
from .scale_log import ScaleLog
from .transport import Transport

NODE_STATES = ("idle", "preparing", "running", "leaving", "unusable")
PORT_RANGE = (29500, 39999)  # where a MASTER_PORT is picked when a node cannot be asked
# An unusable node of a pool is tried again (NodePool._recover) this long after it became
# unusable, then after twice as long each time it stays so, up to RETRY_MAX_SECONDS.
RETRY_FIRST_SECONDS = float(os.environ.get("BATCHAI_NODE_RETRY_SECONDS", "10"))
RETRY_MAX_SECONDS = 300.0
UNUSABLE_SHOWN = 5  # a waiting run's reason names the errors of this many unusable nodes


@dataclass(frozen=True)
class DiskTarget:
    """Where the engine looks after node disk: run this on `node`, for these node roots."""

    node: NodeInfo
    roots: list[str]
    objects_dir: str | None  # the node's own object cache (None: it is not the node's, e.g. local)
    nodes: list[NodeInfo] = field(default_factory=list)  # the nodes whose figures the report has


@dataclass
class NodeInfo:
    """One node as clients see it (docs/reference/python-api.md: id, address, state, gpus, current run, last error)."""

    id: str
    address: str | None
    state: str
    gpus: int = 0
    run_id: str | None = None
    error: str | None = None
    since: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: NodeRow) -> NodeInfo:
        return cls(id=row["id"], address=row["address"], state=row["state"], gpus=row["gpus"],
                   run_id=row["run_id"], error=row["error"], since=row["since"], info=row["info"])

    @property
    def gpu_ids(self) -> list[str]:
        return [str(g) for g in self.info.get("gpu_ids", [])]


class Compute(ABC):
    """A cluster's backend. Lives in the engine process; one instance per cluster."""

    backend: ClassVar[str]
    #: True when the backend orders its own queue (Slurm backfills): the engine then offers it
    #: every queued run of the cluster, not only the head of the cluster's queue.
    queues_itself: ClassVar[bool] = False
    #: True when every node of the cluster reads one object cache (a shared root): each snapshot
    #: object is then sent once for the cluster, not once per node.
    shared_object_cache: ClassVar[bool] = False
    #: Run properties that describe the run's live allocation (e.g. the Slurm job state); the
    #: engine drops them when the run lets go of its nodes.
    live_properties: ClassVar[tuple[str, ...]] = ()
    #: True when node roots belong to this workspace alone (local folders inside it): run folders
    #: of runs the workspace no longer knows (deleted ones) are removed there too.
    owns_node_roots: ClassVar[bool] = False

    def __init__(self, config: dict[str, Any], workspace_path: Path, history: RunHistory):
        self.config = config
        self.workspace_path = Path(workspace_path)
        self.history = history
        self._objects: dict[str, set[str]] = {}  # object cache key -> digests known to be there
        self._settings: tuple[dict[str, Any], ClusterConfig] | None = None  # (of which config, typed)

    @property
    def name(self) -> str:
        return str(self.config["name"])

    @property
    def settings(self) -> ClusterConfig:
        """The cluster's settings, typed (the common fields; backend options in `.options`);
        read again only when the engine hands the backend new settings."""
        if self._settings is None or self._settings[0] is not self.config:
            self._settings = (self.config, ClusterConfig.from_dict(self.config))
        return self._settings[1]

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Typed errors (SpecError) for a cluster's backend options; returns the config to store.

        The default accepts what the generic checks of cluster.py let through."""
        return config

    # -- what every backend answers ----------------------------------------------------------
    @abstractmethod
    def allocate(self, run: RunRow, count: int) -> Allocation:
        """A gang of `count` nodes for the run (its row): Pending, Granted or Refused."""

    @abstractmethod
    def release(self, run_id: str) -> None:
        """The run is over: its nodes go back to idle (or away)."""

    @abstractmethod
    def transport(self, node: NodeInfo) -> Transport:
        """How to reach a node (cached per node by the backend)."""

    @abstractmethod
    def node_root(self, node: NodeInfo) -> str:
        """The node's folder for runs and its object cache."""

    # -- where things are (defaults read the cluster's settings) -----------------------------
    def objects_dir(self, node: NodeInfo) -> str:
        return f"{self.node_root(node)}/objects"

    def shared_dir(self) -> str | None:
        """A folder every node of the cluster sees (AZ_BATCHAI_SHARED_JOB_TEMP), if any."""
        value = self.config.get("shared_root")
        return str(value) if value else None

    def python(self, node: NodeInfo | None = None) -> str:
        """The Python that runs the node agent on the node."""
        return str(self.config.get("python") or "python3")

    def job_user(self) -> JobUser | None:
        """The account the agent (as root) starts the job's processes as; None: its own."""
        return None

    def gpus_per_node(self) -> int:
        return self.settings.gpus_per_node

    def capacity(self) -> int:
        return self.settings.max_nodes

    def nodes(self) -> list[NodeInfo]:
        """The cluster's nodes as the nodes table has them."""
        return [NodeInfo.from_row(r) for r in self.history.nodes(self.name)]

    # -- preparing and running a run ---------------------------------------------------------
    def free_port(self, node: NodeInfo) -> int:
        """A TCP port for MASTER_PORT on the run's first node.

        The default cannot ask the node and picks one at random in PORT_RANGE; a backend that
        can run a command there asks it. OSError or ValueError make the engine pick at random."""
        return random.randint(*PORT_RANGE)

    def _object_cache_key(self, node: NodeInfo) -> str:
        return "" if self.shared_object_cache else node.id

    def ensure_objects(self, node: NodeInfo, digests: list[str], store: SnapshotStore) -> int:
        """Send the snapshot objects the node's cache lacks (small ones in packs,
        compute/object_push.py); returns how many were sent.

        What a cache holds is listed once, then remembered (per node, or once for a cluster
        whose nodes share one cache): a re-submit of the same code sends nothing and lists nothing.
        """
        known = self._objects.setdefault(self._object_cache_key(node), set())
        missing = [d for d in digests if d not in known]
        if not missing:
            return 0
        transport = self.transport(node)
        objects = self.objects_dir(node)
        known.clear()
        known.update(node_objects(transport, objects))
        sent = send_objects(transport, objects, [d for d in missing if d not in known], store)
        known.update(missing)
        return sent

    def forget_objects(self, node: NodeInfo) -> None:
        """The node's cache may be gone (the node was given back): list it again next time."""
        self._objects.pop(self._object_cache_key(node), None)

    def launch(self, node: NodeInfo, manifest_path: str, log_path: str) -> None:
        """Start the node agent detached; it refuses to run twice for the same run."""
        self.transport(node).start_detached(
            [self.python(node), "-m", "batchai_jupyter.node.agent", manifest_path], log_path)

    def kill_groups(self, node: NodeInfo, pgids: list[int]) -> None:
        """Last resort for a lost agent: kill the process groups it recorded."""
        if pgids:
            self.transport(node).run(["/bin/sh", "-c", "kill -KILL " +
                                      " ".join(f"-{int(p)}" for p in pgids) + " 2>/dev/null; true"])

    def set_node_state(self, node: NodeInfo, state: str, run_id: str | None) -> None:
        """Record a node's state (and node.error) in the nodes table."""
        self.history.put_node(self.name, node.id, state, node.address, run_id, node.error,
                              node.gpus, node.info)

    # -- node disk ---------------------------------------------------------------------------
    def disk_targets(self) -> list[DiskTarget]:
        """The nodes whose disk the engine looks after now (one target per node by default)."""
        out = []
        for node in self.nodes():
            if node.state == "unusable" or (node.state == "preparing" and not node.run_id):
                continue
            root = self.node_root(node)
            out.append(DiskTarget(node, [root], self.objects_dir(node), [node]))
        return out

    def node_disk(self, target: DiskTarget, request: DiskRequest) -> DiskReport:
        """Carry out a disk request on the target's node (node/cache.py), through its transport."""
        code, out, err = self.transport(target.node).run(
            [self.python(target.node), "-m", "batchai_jupyter.node.cache", json.dumps(request)], timeout=120)
        if code != 0:
            raise OSError(f"node {target.node.id}: disk upkeep failed: {(err or out).strip()[-300:]}")
        report: DiskReport = json.loads(out.strip().splitlines()[-1])
        return report

    # -- upkeep ------------------------------------------------------------------------------
    def reclaim_nodes(self, active_run_ids: set[str]) -> None:
        """After an engine restart: nodes held by runs that are no longer active go back to idle."""
        for node in self.nodes():
            if node.run_id and node.run_id not in active_run_ids:
                self.set_node_state(node, "idle", None)

    def maintain(self) -> list[Evict]:
        """Periodic upkeep; returns the runs whose nodes were taken away."""
        return []

    def delete(self) -> None:
        """The cluster is being deleted and no run uses it any more: give every node back.

        The default forgets the nodes; a backend that holds more (hosts, jobs) gives it back."""
        for node in self.nodes():
            self.history.delete_node(self.name, node.id)

    def close(self) -> None:
        """Release connections (the engine stops or the cluster is gone) and forget caches."""
        self._objects.clear()


class NodePool(Compute):
    """Nodes the engine provisions itself and tracks in the nodes table.

    An `unusable` node is not given up: maintain() calls `_recover` for it with backoff
    (RETRY_FIRST_SECONDS after it became unusable, doubling up to RETRY_MAX_SECONDS), and an
    unusable node never holds a slot the pool could fill with another host."""

    def __init__(self, config: dict[str, Any], workspace_path: Path, history: RunHistory):
        super().__init__(config, workspace_path, history)
        self._retries: dict[str, tuple[float, float]] = {}  # unusable node -> (next try, delay)

    @abstractmethod
    def _slots(self) -> list[str]:
        """Every node id this pool could have, in preference order."""

    @abstractmethod
    def _provision(self, node_id: str) -> dict[str, Any]:
        """Make a node usable: returns address, gpus, info; raise to mark it unusable."""

    def _deprovision(self, node: NodeInfo) -> None:
        """Give a node back (stop what it runs for us, drop its connection)."""

    def _recover(self, node: NodeInfo) -> None:
        """Try to make an unusable node usable again (stop its leftovers, set it up anew).

        Called by maintain() with backoff; the node becomes idle once this (or work it starts)
        succeeds. The default leaves the node as it is."""

    def capacity(self) -> int:
        return min(self.settings.max_nodes, len(self._slots()))

    def _add_node(self, node_id: str) -> NodeInfo | None:
        started = time.time()
        self.history.put_node(self.name, node_id, "preparing")
        try:
            got = self._provision(node_id)
        except Exception as exc:  # noqa: BLE001 — any setup failure makes the node unusable
            self._unusable(node_id, exc)
            ScaleLog(self.history).record(self.name, "up", node_id, started, ok=False)
            return None
        node = NodeInfo(id=node_id, address=got.get("address"), state="idle",
                        gpus=int(got.get("gpus", 0)), info=got.get("info", {}))
        self.history.put_node(self.name, node_id, "idle", node.address, None, None, node.gpus, node.info)
        ScaleLog(self.history).record(self.name, "up", node_id, started)
        return node

    def _unusable(self, node_id: str, exc: BaseException) -> None:
        """A setup failed: the node is unusable with the error's text, marked `refused` in its
        info when trying again cannot fix it (NodeRefused: a host key unknown or changed)."""
        text = str(exc) or type(exc).__name__
        info = {"refused": True} if isinstance(exc, NodeRefused) else None
        self.history.put_node(self.name, node_id, "unusable", error=text, info=info)

    def _waiting(self, count: int) -> Pending:
        """Why a run waits, with the errors of the pool's unusable nodes (re-probed meanwhile)."""
        reason = f"waiting for {count} node(s) of cluster {self.name!r}"
        unusable = [n for n in self.nodes() if n.state == "unusable"]
        if unusable:
            errors = [n.error if n.error and n.id in n.error else f"{n.id}: {n.error or 'unusable'}"
                      for n in unusable[:UNUSABLE_SHOWN]]
            more = len(unusable) - UNUSABLE_SHOWN
            reason += "; unusable nodes: " + "; ".join(errors) + (f" (and {more} more)" if more > 0 else "")
        return Pending(reason)

    def _never_placed(self, nodes: list[NodeInfo], count: int) -> Refused | None:
        """Refused when too few hosts are left once those that refused for good are taken away
        (each was probed and answered a NodeRefused error); None while the run may still start."""
        slots = self._slots()
        refused = [n for n in nodes if n.state == "unusable" and n.info.get("refused") and n.id in slots]
        if not refused or count > len(slots) or len(slots) - len(refused) >= count:
            return None
        return Refused(f"cluster {self.name!r} can never place {count} node(s): "
                       + "; ".join(n.error or n.id for n in refused))

    def allocate(self, run: RunRow, count: int) -> Allocation:
        nodes = self.nodes()
        never = self._never_placed(nodes, count)
        if never is not None:
            return never
        idle = [n for n in nodes if n.state == "idle"]
        max_nodes = self.settings.max_nodes
        existing = {n.id for n in nodes}
        usable = [n for n in nodes if n.state != "unusable"]  # an unusable node holds no slot
        free_slots = [s for s in self._slots() if s not in existing][:max(0, max_nodes - len(usable))]
        if len(idle) + len(free_slots) < count:
            return self._waiting(count)
        for slot in free_slots[:count - len(idle)]:
            node = self._add_node(slot)
            if node is None:
                return self._waiting(count)
            idle.append(node)
        chosen = idle[:count]
        for node in chosen:
            node.state, node.run_id = "preparing", run["id"]
            self.set_node_state(node, "preparing", run["id"])
        return Granted(chosen)

    def release(self, run_id: str) -> None:
        for node in self.nodes():
            if node.run_id == run_id:
                if node.state == "leaving":
                    self._remove(node)
                else:
                    self.set_node_state(node, "idle", None)

    def _remove(self, node: NodeInfo) -> None:
        started = time.time()
        try:
            self._deprovision(node)
        finally:
            self.history.delete_node(self.name, node.id)
            ScaleLog(self.history).record(self.name, "down", node.id, started)

    def delete(self) -> None:
        for node in self.nodes():
            self._remove(node)

    def maintain(self) -> list[Evict]:
        nodes = self.nodes()
        settings = self.settings
        min_nodes, max_nodes = settings.min_nodes, settings.max_nodes
        idle_limit = float(settings.idle_seconds_before_scaledown)
        actions: list[Evict] = []
        usable = [n for n in nodes if n.state != "unusable"]
        # shrink to max_nodes (after a resize): idle nodes first, then busy ones per the option
        excess = len(usable) - max_nodes
        for node in sorted(usable, key=lambda n: (n.state != "idle", -n.since)):
            if excess <= 0:
                break
            if node.state == "idle":
                self._remove(node)
            elif node.state != "leaving":
                option = settings.node_deallocation_option
                self.set_node_state(node, "leaving", node.run_id)
                if option != "waitforjobcompletion" and node.run_id:
                    actions.append(Evict(node.run_id, requeue=option == "requeue"))
            excess -= 1
        # scale down idle nodes above min_nodes
        now = time.time()
        nodes = self.nodes()
        alive = [n for n in nodes if n.state != "unusable"]
        for node in sorted(alive, key=lambda n: n.since):
            if len(alive) <= min_nodes:
                break
            if node.state == "idle" and now - node.since >= idle_limit:
                self._remove(node)
                alive.remove(node)
        # scale up to min_nodes
        existing = {n.id for n in nodes}
        missing = min(min_nodes, max_nodes) - len(alive)
        for slot in [s for s in self._slots() if s not in existing][:max(0, missing)]:
            self._add_node(slot)
        self._retry_unusable(self.nodes(), now)
        return actions

    def _retry_unusable(self, nodes: list[NodeInfo], now: float) -> None:
        """Call _recover for each unusable node whose next try is due (backoff per node)."""
        unusable = {n.id: n for n in nodes if n.state == "unusable"}
        for node_id in [k for k in self._retries if k not in unusable]:
            del self._retries[node_id]  # usable again, or gone
        for node in unusable.values():
            due, delay = self._retries.setdefault(node.id, (node.since + RETRY_FIRST_SECONDS,
                                                            RETRY_FIRST_SECONDS))
            if now < due:
                continue
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            self._retries[node.id] = (now + delay, delay)
            self._recover(node)


def shell_join(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def require(config: dict[str, Any], key: str, backend: str) -> Any:
    if config.get(key) in (None, "", []):
        raise ClusterError(f"a {backend} cluster needs {key}=")
    return config[key]


__all__ = ["DEALLOCATION_OPTIONS", "NODE_STATES", "Allocation", "Compute", "DiskTarget", "Evict", "Granted",
           "NodeInfo", "NodePool", "Pending", "Refused"]

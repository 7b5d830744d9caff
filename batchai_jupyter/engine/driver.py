"""RunDriver: the engine's handling of one active run — launch, tail, finalize.

Everything a driver knows it can rebuild from history.db and the nodes' files, which is what
lets a restarted engine pick a run up exactly where the last one stopped: log copies resume at
their own size, metrics at the offset stored with them, and launch is idempotent per run.
A driver sees the workspace through the EngineContext only; the engine and the steps call its
public methods: launch, step, signal_cancel, evict, finish, fail, requeue, node_lost.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from typing import Any

from ..compute.base import PORT_RANGE, Compute, NodeInfo
from ..errors import DISK_FULL_ERRNOS, WorkspaceError
from ..node.manifest import ManifestNode, ManifestSnapshot, RunManifest
from ..node.paths import RunPaths, run_key
from ..node.process import main_log_name
from ..records import RunRow
from .context import EngineContext
from .job_records import settle
from .outcome import Status, exit_codes, failed, run_outcome
from .parent_rules import hold
from .scrub import scrub_manifests
from .tail import DISK_FULL, RunTail

log = logging.getLogger("batchai_jupyter.engine")
LOST_AFTER_SECONDS = float(os.environ.get("BATCHAI_NODE_LOST_SECONDS", "20"))
START_GRACE_SECONDS = 60.0
#: a canceled run whose agent has not started by then ends Canceled (a late agent starts nothing)
CANCEL_START_GRACE_SECONDS = 5.0


class RunDriver:
    """One active run: its nodes, their run folders and the workspace copies of their files."""

    def __init__(self, ctx: EngineContext, run: RunRow, compute: Compute, nodes: list[NodeInfo]):
        self.ctx = ctx
        self.history = ctx.history
        self.run = run
        self.id: str = run["id"]
        self.compute = compute
        self.nodes = nodes
        self.attempt = int(run["properties"].get("attempt", 0))
        key = run_key(self.id, self.attempt)
        self.paths = [RunPaths(compute.node_root(n), key) for n in nodes]
        self.files = ctx.run_files_dir(self.id)
        self.files.mkdir(parents=True, exist_ok=True)
        self.tail = RunTail(self.history, self.id, self.files, self.attempt)
        for index, (node, paths) in enumerate(zip(nodes, self.paths, strict=True)):
            follow = getattr(compute.transport(node), "follow", None)  # a host that pushes its files
            if follow is not None:                                     # (compute/ssh/push.py)
                follow(paths, self.tail, index, compute.python(node))
        self.launched_at = time.time()
        #: when the cancel was sent to the agents (a run picked up while CancelRequested: now)
        self.cancel_sent_at: float | None = time.time() if run["status"] == "CancelRequested" else None
        self.running = run["status"] in ("Running", "Finalizing")
        self.requeue_after = False
        self.unreachable: dict[int, float] = {}  # node index -> since when it does not answer
        self.peers_stopped = False
        self.beats: dict[int, tuple[bytes, float]] = {}  # node index -> (last heartbeat, seen at)
        self.full_noted: str | None = "?"  # the disk-full warning last noted in the run's properties
        self.finalizing = False  # finalize started (it waits while the workspace disk is full)

    # -- launch ------------------------------------------------------------------------------
    def launch(self) -> None:
        """Send objects and manifests, start one agent per node (a no-op where one started)."""
        spec = self.run["spec"]
        snapshot_id = self.run["snapshot"] or ""
        # the stored manifest goes beside the run's manifest as it is (its id names its tree on
        # the nodes, node/tree.py): an agent whose node has that tree never reads it
        listing = self.ctx.store.manifest_text(snapshot_id).encode()
        digests = self.ctx.store.digests(snapshot_id)
        secrets = self.ctx.secrets.get("runs", self.id)
        port = self.run["properties"].get("master_port") or self._free_port()
        node_list = [{"id": n.id, "address": n.address, "gpus": n.gpus, "gpu_ids": n.gpu_ids,
                      "root": self.compute.node_root(n)} for n in self.nodes]
        props = dict(self.run["properties"], master_port=port, main_log=main_log_name(spec))
        self.history.update_run(self.id, properties=props)
        self.run["properties"] = props
        extra = self.ctx.launch_extras(self.run, self.compute)
        for index, (node, paths) in enumerate(zip(self.nodes, self.paths, strict=True)):
            transport = self.compute.transport(node)
            if transport.exists(paths.started):
                continue
            self.compute.ensure_objects(node, digests, self.ctx.store)
            transport.write_bytes(paths.snapshot_listing, listing, 0o600)
            from ..spec import JobSpec
            job = RunManifest(
                run_id=self.id, experiment=self.run["experiment"], run_key=paths.key,
                node_root=self.compute.node_root(node), node_index=index,
                nodes=[ManifestNode.from_dict(n) for n in node_list], master_port=int(port),
                objects_dir=self.compute.objects_dir(node), shared_dir=self.compute.shared_dir(),
                python=self.compute.python(node),
                snapshot=ManifestSnapshot.listed(paths.snapshot_listing, snapshot_id),
                spec=JobSpec.from_dict(spec), secrets={str(k): str(v) for k, v in secrets.items()}, **extra,
            )
            transport.write_bytes(paths.manifest, job.to_json().encode(), 0o600)
            self.compute.launch(node, paths.manifest, paths.agent_log)
        self.launched_at = time.time()

    def _free_port(self) -> int:
        """MASTER_PORT: asked of the run's first node through its backend, else picked at random."""
        try:
            return int(self.compute.free_port(self.nodes[0]))
        except (OSError, ValueError):
            log.warning("run %s: no free port from node %s", self.id, self.nodes[0].id)
        return random.randint(*PORT_RANGE)

    # -- each engine tick ----------------------------------------------------------------------
    def step(self) -> bool:
        """Tail, follow state, finalize when every agent is done. True once the run is final."""
        statuses: list[Status | None] = []
        self.tail.full = None
        for index, (node, paths) in enumerate(zip(self.nodes, self.paths, strict=True)):
            transport = self.compute.transport(node)
            try:
                self.tail.tail(transport, index, node, paths)
                raw = transport.read_bytes(paths.status)
            except ConnectionError as exc:  # the node does not answer: lost once it stays so
                since = self.unreachable.setdefault(index, time.time())
                if time.time() - since > LOST_AFTER_SECONDS:
                    self.node_lost(index, f"node {node.id} lost: unreachable for "
                                          f"{time.time() - since:.0f} s ({exc})")
                    return True
                statuses.append(None)
                continue
            self.unreachable.pop(index, None)
            statuses.append(json.loads(raw) if raw else None)
        if not self.running and self._any_running():
            self.running = True
            if self.history.run_status(self.id) == "Preparing":
                self.history.set_status(self.id, "Running")
            for node in self.nodes:
                self.compute.set_node_state(node, "running", self.id)
        self._note_disk_full()
        done = [s for s in statuses if s is not None]
        if len(done) == len(statuses) and self.tail.full is None:  # a full disk: the end waits
            return self.finalize(done)
        self._stop_peers_of_failure(statuses)
        if self._canceled_before_start(statuses):
            self.finish("Canceled", {"message": "canceled before its agent started"}, done)
            return True
        lost = self._lost_node(statuses)
        if lost is not None:
            self.node_lost(*lost)
            return True
        return False

    def _note_disk_full(self) -> None:
        """properties["warning"] says the workspace disk is full while copies wait for space."""
        if self.tail.full == self.full_noted:
            return
        row = self.history.run_row(self.id)
        props = dict(row["properties"]) if row else {}
        warning = props.get("warning")
        if warning == self.tail.full or (self.tail.full is None and not str(warning or "")
                                         .startswith(DISK_FULL)):
            self.full_noted = self.tail.full
            return
        if self.tail.full is None:
            props.pop("warning", None)
            log.info("run %s: the workspace disk has space again; copying resumes", self.id)
        else:
            props["warning"] = self.tail.full
            log.warning("run %s: %s", self.id, self.tail.full)
        try:
            self.history.update_run(self.id, properties=props)
            self.full_noted = self.tail.full
        except WorkspaceError:  # history.db is on the full disk too: the log says it
            log.warning("run %s: cannot note the full disk in the run history", self.id)

    def signal_cancel(self, why: str) -> None:
        """Ask every agent of the run to stop (they write status.json as they end)."""
        if why == "canceled" and self.cancel_sent_at is None:
            self.cancel_sent_at = time.time()
        for node, paths in zip(self.nodes, self.paths, strict=True):
            try:
                self.compute.transport(node).write_bytes(paths.cancel, why.encode())
            except Exception:  # one unreachable node must not stop the others
                log.exception("cannot reach node %s to cancel", node.id)

    def evict(self, requeue: bool) -> None:
        """A resize took one of the run's nodes away: stop it, then requeue it or let it end."""
        self.requeue_after = requeue
        self.signal_cancel("node taken away by a resize")

    def _stop_peers_of_failure(self, statuses: list[Status | None]) -> None:
        """One node's job failed: its peers on the other nodes would wait for it forever."""
        if self.peers_stopped or not any(failed(s) for s in statuses if s is not None):
            return
        self.peers_stopped = True
        for index, (node, paths, status) in enumerate(zip(self.nodes, self.paths, statuses, strict=True)):
            if status is not None or index in self.unreachable:
                continue
            try:
                self._kill_recorded(node, paths)
            except (OSError, ValueError):
                log.warning("run %s: cannot stop the processes on node %s", self.id, node.id)

    def _kill_recorded(self, node: NodeInfo, paths: RunPaths) -> None:
        raw = self.compute.transport(node).read_bytes(paths.pids)
        if raw:
            self.compute.kill_groups(node, list(json.loads(raw).values()))

    def _any_running(self) -> bool:
        for index, (node, paths) in enumerate(zip(self.nodes, self.paths, strict=True)):
            if index in self.unreachable:
                continue
            state = self.compute.transport(node).read_bytes(paths.state)
            if state in (b"running", b"finalizing"):
                return True
        return False

    def _canceled_before_start(self, statuses: list[Status | None]) -> bool:
        """Canceled a while ago, and every agent still missing never started (no heartbeat)."""
        if self.cancel_sent_at is None or time.time() - self.cancel_sent_at < CANCEL_START_GRACE_SECONDS:
            return False
        return all(status is not None or (index not in self.unreachable and self.compute.transport(
                   node).read_bytes(paths.heartbeat) is None)
                   for index, (node, paths, status) in enumerate(zip(self.nodes, self.paths, statuses,
                                                                      strict=True)))

    def _lost_node(self, statuses: list[Status | None]) -> tuple[int, str] | None:
        now = time.time()
        for index, (node, paths, status) in enumerate(zip(self.nodes, self.paths, statuses, strict=True)):
            if status is not None or index in self.unreachable:
                continue
            raw = self.compute.transport(node).read_bytes(paths.heartbeat)
            if raw is None and index in self.beats:  # it beat, then its file went (folder deleted)
                raw = b""
            if raw is None:
                if now - self.launched_at > START_GRACE_SECONDS:
                    return index, f"the agent on node {node.id} never started"
                continue
            seen = self.beats.get(index)
            if seen is None or seen[0] != raw:  # timed on our clock: a node's clock may differ
                self.beats[index] = (raw, now)
                continue
            if now - seen[1] > LOST_AFTER_SECONDS:
                return index, f"node {node.id} lost: no heartbeat for {now - seen[1]:.0f} s"
        return None

    # -- the end ------------------------------------------------------------------------------------
    def finalize(self, statuses: list[Status]) -> bool:
        """Collect the last lines and the outputs, record the result. False: the workspace
        disk is full, and a later tick finalizes again (nothing is final before every byte is in)."""
        if not self.finalizing and self.history.run_status(self.id) not in ("CancelRequested",):
            self.history.set_status(self.id, "Finalizing")
        self.finalizing = True
        for index, (node, paths) in enumerate(zip(self.nodes, self.paths, strict=True)):
            self.tail.tail(self.compute.transport(node), index, node, paths)  # the last lines
        order = list(range(1, len(self.nodes))) + [0]  # node 0's files win a clash
        for index in order:
            try:
                self.tail.collect_outputs(self.compute.transport(self.nodes[index]), self.paths[index])
            except OSError as exc:
                if exc.errno not in DISK_FULL_ERRNOS:
                    raise
                self.tail.full = f"{DISK_FULL}: {exc.strerror or exc} collecting outputs"
        if self.tail.full is not None:
            self._note_disk_full()
            return False
        if self.requeue_after:
            self.requeue("the node was taken away (node_deallocation_option=requeue)")
            return True
        status, error = run_outcome(statuses, self.files, self.run_cancel_requested())
        self.finish(status, error, statuses)
        return True

    def run_cancel_requested(self) -> bool:
        row = self.history.run_row(self.id)
        return bool(row and row["cancel_requested"])

    def _release(self) -> dict[str, Any]:
        """Give the nodes back; the run's properties without those of the live allocation."""
        scrub_manifests(self.compute, self.nodes, self.paths)
        for node, paths in zip(self.nodes, self.paths, strict=True):
            unfollow = getattr(self.compute.transport(node), "unfollow", None)
            if unfollow is not None:
                unfollow(paths)
        self.compute.release(self.id)
        row = self.history.run_row(self.id)
        props = dict(row["properties"]) if row else dict(self.run["properties"])
        for key in self.compute.live_properties:
            props.pop(key, None)
        return props

    def finish(self, status: str, error: dict[str, Any] | None, statuses: list[Any]) -> None:
        """The run ends with this status: free its nodes, drop its secrets, record the result."""
        status, error = settle(self.history, self.id, status, error)  # fail() asked, child runs
        props = self._release()
        self.ctx.secrets.delete("runs", self.id)
        props["exit_codes"] = exit_codes(statuses)
        props.pop("waiting", None)
        if hold(self.history, self.run, status, error, props):  # a parent waits for its children
            log.info("run %s ended its processes (%s); waits for its children", self.id, status)
            return
        self.history.set_status(self.id, status, (error or {}).get("message"), error=error,
                                properties=props)
        log.info("run %s %s", self.id, status)

    def fail(self, message: str, **error: Any) -> None:
        """The run fails with this message (and these extra error fields)."""
        self.finish("Failed", {"message": message, **error}, [])

    def requeue(self, why: str) -> None:
        """Put the run back in the queue as a new attempt (a new run folder on the nodes)."""
        props = self._release()
        attempt = self.attempt + 1
        props["attempt"] = attempt
        props.pop("master_port", None)
        previous = self.files.parent / f"attempt-{self.attempt}"
        if self.files.exists() and not previous.exists():
            self.files.rename(previous)
        self.history.clear_offsets(self.id)
        self.history.set_status(self.id, "Queued", f"requeued: {why}", properties=props, nodes=[])

    def node_lost(self, index: int, why: str) -> None:
        """A node stopped answering: stop what is left, mark the node, fail or requeue."""
        log.warning("run %s: %s", self.id, why)
        for node, paths in zip(self.nodes, self.paths, strict=True):
            try:
                self.compute.transport(node).write_bytes(paths.cancel, b"node lost")
                self._kill_recorded(node, paths)
            except Exception:  # noqa: BLE001 — the lost node itself may not answer
                log.debug("run %s: node %s does not answer", self.id, node.id)
        lost = self.nodes[index]
        lost.error = why
        self.compute.set_node_state(lost, "unusable", None)
        for i, (node, paths) in enumerate(zip(self.nodes, self.paths, strict=True)):
            if i != index:
                self.tail.tail(self.compute.transport(node), i, node, paths)
        if self.run_cancel_requested():  # a canceled run never goes back to the queue
            self.finish("Canceled", {"message": f"canceled ({why})"}, [])
        elif self.compute.settings.node_deallocation_option == "requeue" \
                and self.compute.config.get("requeue_on_node_loss", True):
            self.requeue(why)
        else:
            self.fail(why, exit_codes={})

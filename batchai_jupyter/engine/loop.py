"""The engine: one process per workspace, the only writer of run state.

    python -m batchai_jupyter.engine serve --workspace PATH

Loop: apply intents (cancel, cluster delete) -> schedule queued runs onto nodes (gang, by
priority then age) -> launch agents -> tail logs and metrics -> finalize -> scale pools. It holds
engine.lock while alive; started on demand by clients, it exits after a while with nothing to
do. On start it reconciles: active runs are picked up from history.db and the nodes' files.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ..compute import make_compute
from ..compute.base import Compute, NodeInfo
from .control import info_path, lock_path
from .driver import RunDriver
from ..history import ACTIVE_STATUSES
from ..workspace import Workspace

log = logging.getLogger("batchai_jupyter.engine")
TICK_ACTIVE = 0.05
TICK_IDLE = 0.05
MAINTAIN_EVERY = 1.0


class Engine:
    def __init__(self, workspace_path: Path, idle_exit: float | None = None):
        self.workspace = Workspace(workspace_path)
        self.history = self.workspace.history
        self.idle_exit = float(os.environ.get("BATCHAI_ENGINE_IDLE_SECONDS", "120")) \
            if idle_exit is None else idle_exit
        self.computes: dict[str, Compute] = {}
        self.drivers: dict[str, RunDriver] = {}
        self._stop = False
        self._lock_fd: int | None = None
        self._last_maintain = 0.0
        self._configs: dict[str, str] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def acquire(self, wait: float = 1.0) -> bool:
        fd = os.open(lock_path(self.workspace.path), os.O_RDWR | os.O_CREAT, 0o644)
        end = time.time() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._lock_fd = fd
                info_path(self.workspace.path).write_text(json.dumps(
                    {"pid": os.getpid(), "started": time.time(), "python": sys.executable}))
                return True
            except BlockingIOError:
                if time.time() > end:
                    os.close(fd)
                    return False
                time.sleep(0.1)

    def serve(self) -> int:
        if not self.acquire():
            log.info("another engine holds the lock; exiting")
            return 0
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        log.info("engine %d serving %s", os.getpid(), self.workspace.path)
        self.reconcile()
        idle_since = time.time()
        while not self._stop:
            busy = self.tick()
            if busy:
                idle_since = time.time()
            elif self.idle_exit >= 0 and time.time() - idle_since > self.idle_exit:
                log.info("idle for %.0f s; exiting", self.idle_exit)
                break
            time.sleep(TICK_ACTIVE if self.drivers else TICK_IDLE)
        for compute in self.computes.values():
            compute.close()
        return 0

    def stop(self) -> None:
        self._stop = True

    def tick(self) -> bool:
        """One pass of the loop; True while there is anything to do or to wait for."""
        try:
            self.apply_intents()
            self.schedule()
            for run_id, driver in list(self.drivers.items()):
                try:
                    if driver.step():
                        del self.drivers[run_id]
                except Exception:  # noqa: BLE001 — one bad run must not stop the others
                    log.exception("run %s: step failed", run_id)
            if time.time() - self._last_maintain > MAINTAIN_EVERY:
                self._last_maintain = time.time()
                self.maintain()
        except Exception:  # noqa: BLE001
            log.exception("engine tick failed")
        return bool(self.drivers) or bool(self.history.run_rows(status=("Queued",), limit=1)) \
            or self._nodes_to_scale_down()

    # -- clusters ---------------------------------------------------------------------------------
    def compute(self, name: str) -> Compute | None:
        row = self.history.cluster_row(name)
        if row is None:
            return None
        signature = json.dumps(row, sort_keys=True)
        if self._configs.get(name) != signature or name not in self.computes:
            if name in self.computes:
                self.computes[name].config = row  # keep connections; take the new settings
            else:
                self.computes[name] = make_compute(row, self.workspace.path, self.history)
            self._configs[name] = signature
        return self.computes[name]

    def maintain(self) -> None:
        for row in self.history.cluster_rows():
            compute = self.compute(row["name"])
            if compute is None:
                continue
            try:
                actions = compute.maintain()
            except Exception:  # noqa: BLE001
                log.exception("cluster %s: maintain failed", row["name"])
                continue
            for run_id, option in actions:
                driver = self.drivers.get(run_id)
                if driver is not None:
                    driver.requeue_after = option == "requeue"
                    self._cancel_on_nodes(driver, "node taken away by a resize")

    def _nodes_to_scale_down(self) -> bool:
        for row in self.history.cluster_rows():
            nodes = [n for n in self.history.nodes(row["name"]) if n["state"] != "unusable"]
            if len(nodes) > int(row.get("min_nodes", 0)):
                return True
        return False

    def launch_extras(self, run: dict[str, Any], compute: Compute) -> dict[str, Any]:
        """Extra fields for the node manifest (datastore credentials, grace period)."""
        extras: dict[str, Any] = {"kill_grace_seconds": float(os.environ.get("BATCHAI_KILL_GRACE", "10"))}
        spec = run["spec"]
        if spec.get("inputs") or spec.get("outputs") or spec.get("mounts"):
            from ..datastores.credentials import node_data_config
            extras["data"] = node_data_config(self.workspace, run)
        return extras

    # -- runs ---------------------------------------------------------------------------------------
    def status_of(self, run_id: str) -> str | None:
        row = self.history.run_row(run_id)
        return row["status"] if row else None

    def reconcile(self) -> None:
        """Pick up every run a previous engine left active, from history.db and the nodes."""
        for run in self.history.run_rows(status=tuple(s for s in ACTIVE_STATUSES if s != "Queued")):
            compute = self.compute(run["cluster"])
            if compute is None:
                self.history.set_status(run["id"], "Failed", "cluster deleted",
                                        error={"message": f"cluster {run['cluster']!r} no longer exists"})
                continue
            by_id = {n["id"]: NodeInfo.from_row(n) for n in self.history.nodes(run["cluster"])}
            nodes = [by_id.get(n["id"]) or NodeInfo(id=n["id"], address=n.get("address"), state="running",
                                                   info=n.get("info", {})) for n in run["nodes"]]
            driver = RunDriver(self, run, compute, nodes)
            self.drivers[run["id"]] = driver
            driver.launch()  # idempotent: starts only agents that never started
            log.info("reconciled run %s (%s)", run["id"], run["status"])
        active = set(self.drivers)
        for row in self.history.cluster_rows():  # nodes held by runs that are not active any more
            for n in self.history.nodes(row["name"]):
                if n["run_id"] and n["run_id"] not in active:
                    self.history.put_node(row["name"], n["id"], "idle", n["address"], None, n["error"],
                                          n["gpus"], n["info"])

    def schedule(self) -> None:
        blocked: set[str] = set()
        for run in self.history.queued_runs():
            cluster = run["cluster"]
            if cluster in blocked:
                continue  # strict order per cluster: a gang at the head is not starved
            compute = self.compute(cluster)
            if compute is None:
                self.history.set_status(run["id"], "Failed", "unknown cluster",
                                        error={"message": f"cluster {cluster!r} does not exist"})
                continue
            count = int(run["spec"].get("node_count", 1))
            nodes = compute.allocate(run["id"], count)
            if nodes is None:
                if not getattr(compute, "queues_itself", False):  # Slurm orders its own queue
                    blocked.add(cluster)
                self._note_waiting(run, f"waiting for {count} node(s) of cluster {cluster!r}")
                continue
            node_rows = [{"id": n.id, "address": n.address, "info": n.info} for n in nodes]
            self.history.set_status(run["id"], "Preparing", None, nodes=node_rows)
            run = self.history.run_row(run["id"])
            driver = RunDriver(self, run, compute, nodes)
            self.drivers[run["id"]] = driver
            try:
                driver.launch()
            except Exception as exc:  # noqa: BLE001
                log.exception("run %s: launch failed", run["id"])
                driver._finish("Failed", {"message": f"launch failed: {exc}"}, [])
                del self.drivers[run["id"]]

    def _note_waiting(self, run: dict[str, Any], why: str) -> None:
        if run["properties"].get("waiting") != why:
            self.history.update_run(run["id"], properties=dict(run["properties"], waiting=why))

    def apply_intents(self) -> None:
        for intent in self.history.pending_intents():
            try:
                if intent["kind"] == "cancel":
                    self._cancel(intent["target"])
                elif intent["kind"] == "delete_cluster":
                    self._delete_cluster(intent["target"])
            except Exception:  # noqa: BLE001
                log.exception("intent %s failed", intent)
            self.history.finish_intent(intent["id"])

    def _cancel(self, run_id: str) -> None:
        row = self.history.run_row(run_id)
        if row is None or row["status"] not in ACTIVE_STATUSES:
            return
        if row["status"] == "Queued":
            self.history.set_status(run_id, "Canceled", "canceled before it started",
                                    cancel_requested=1, error={"message": "canceled"})
            return
        self.history.set_status(run_id, "CancelRequested", None, cancel_requested=1)
        driver = self.drivers.get(run_id)
        if driver is not None:
            self._cancel_on_nodes(driver, "canceled")

    def _cancel_on_nodes(self, driver: RunDriver, why: str) -> None:
        for node, paths in zip(driver.nodes, driver.paths):
            try:
                driver.compute.transport(node).write_bytes(paths.cancel, why.encode())
            except Exception:  # noqa: BLE001
                log.exception("cannot reach node %s to cancel", node.id)

    def _delete_cluster(self, name: str) -> None:
        for run in self.history.run_rows(status=ACTIVE_STATUSES, cluster=name):
            self._cancel(run["id"])
        end = time.time() + 30
        while time.time() < end and any(d.compute.name == name for d in self.drivers.values()):
            for run_id, driver in list(self.drivers.items()):
                if driver.compute.name == name and driver.step():
                    del self.drivers[run_id]
            time.sleep(0.05)
        compute = self.compute(name)
        if compute is not None and hasattr(compute, "nodes"):
            for node in compute.nodes():
                compute._remove(node)
        if compute is not None:
            compute.close()
        self.computes.pop(name, None)
        self.history.delete_cluster(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchai_jupyter.engine")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--idle-exit", type=float, default=None,
                        help="seconds with nothing to do before exiting (-1: never)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    return Engine(Path(args.workspace), args.idle_exit).serve()


if __name__ == "__main__":
    sys.exit(main())

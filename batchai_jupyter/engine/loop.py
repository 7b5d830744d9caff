"""The engine: one process per workspace, the only writer of run state.

    python -m batchai_jupyter.engine serve --workspace PATH

The loop runs its steps in turn (steps.py, maintenance.py): apply intents (cancel, cluster
delete) -> step each run's driver (tail logs and metrics, follow state, finalize) -> schedule
queued runs onto nodes (gang, by priority then age) and launch them -> maintain clusters (scale
pools, advance deletions); schedules fire their due slots before the queue, and waiting parents
are followed after the drivers (an enabled schedule always has a next slot, so it keeps the
engine up). Each step answers a Wait; the loop sleeps until the earliest, or until a client
touches the wake folder or a local node's run folder changes (fs_events.py), and exits once
every step has had nothing to do for `idle_exit` seconds. It holds engine.lock while alive; started on
demand by clients. On start it reconciles (reconcile.py): active runs are picked up from
history.db and the nodes' files.
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
from contextlib import closing
from pathlib import Path

from ..compute.base import Compute
from ..compute.transport import LocalTransport
from ..errors import ClusterError
from ..fs_events import FolderEvents
from ..history import RunHistory
from ..layout import WorkspacePaths
from ..node.manifest import DEFAULT_KILL_GRACE_SECONDS, ManifestExtras, data_config
from ..records import RunRow
from ..secrets_store import SecretStore
from ..snapshot import SnapshotStore
from .context import TICK, Computes, EngineContext, Step, Wait
from .control import info_path, lock_path
from .maintenance import Deletions, MaintenanceStep
from .parents import ParentStep
from .reconcile import reconcile
from .runs import Drivers
from .steps import DriverStep, IntentStep, QueueStep, ScheduleStep

log = logging.getLogger("batchai_jupyter.engine")
MIN_SLEEP = 0.005  # the loop never spins: it sleeps at least this long between passes
#: the longest sleep while changes wake the engine (fs_events.py): the fallback look for what
#: no event announces (a lost node's silence, a missed event)
WATCHED_TICK = 1.0


class Engine:
    def __init__(self, workspace_path: Path, idle_exit: float | None = None):
        paths = WorkspacePaths.of(workspace_path)
        if not paths.is_workspace():
            raise ClusterError(f"{paths.root} is not a workspace (no workspace.json); "
                               f"use Workspace.create(path)")
        self.history = RunHistory(paths.history_db)
        self.idle_exit = float(os.environ.get("BATCHAI_ENGINE_IDLE_SECONDS", "120")) \
            if idle_exit is None else idle_exit
        self.computes = Computes(paths.root, self.history)
        self.ctx = EngineContext(paths=paths, history=self.history, store=SnapshotStore(paths.snapshots),
                                 secrets=SecretStore(paths.secrets), computes=self.computes,
                                 launch_extras=self.launch_extras, log=log)
        # the engine knows the workspace through its context only (history, secrets, paths):
        # never through the client API, which starts engines
        self.workspace = self.ctx
        self.drivers: Drivers = {}
        self.deletions = Deletions()
        # drivers before the queue: a node a run's end frees takes the next run in the same pass
        self.driver_step = DriverStep(self.drivers)
        self.steps: list[Step] = [IntentStep(self.drivers, self.deletions),
                                  ScheduleStep(),  # an enabled schedule keeps the engine up
                                  self.driver_step,
                                  QueueStep(self.drivers, self.deletions),
                                  ParentStep(self.drivers),
                                  MaintenanceStep(self.drivers, self.deletions)]
        self._stop = False
        self._lock_fd: int | None = None
        self._folder_runs: dict[str, str] = {}  # a watched node folder -> the run it belongs to

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
        reconcile(self.ctx, self.drivers)
        idle_since = time.time()
        # a job's line, an agent's state change or a client's wake-up ends a sleep early
        # what only the agent reads (its manifest, host file, view) or the engine itself wrote
        # wakes nobody
        with closing(FolderEvents(ignore=("heartbeat", "run.json", "hostfile", "view."))) as events:
            while not self._stop:
                due = [w.next_due for w in self.tick() if w.next_due is not None]
                now = time.time()
                if due:
                    idle_since = now
                elif self.idle_exit >= 0 and now - idle_since > self.idle_exit:
                    log.info("idle for %.0f s; exiting", self.idle_exit)
                    break
                folders, every_run_watched = self.watched_folders()
                if events.watch(folders):
                    self.driver_step.dirty = None
                    continue  # a folder watched from now on: look at every run once before sleeping
                self.driver_step.relaxed = events.active and every_run_watched
                cap = WATCHED_TICK if events.active else TICK
                events.wait(min(cap, max(MIN_SLEEP, min(due) - now)) if due else cap)
                # the next pass steps the runs whose folders changed (and those due a look anyway)
                self.driver_step.dirty = {self._folder_runs[f] for f in events.take_changed()
                                          if f in self._folder_runs}
        self.computes.close_all()
        return 0

    def watched_folders(self) -> tuple[list[str], bool]:
        """Where a change means work: the clients' wake folder and, for every active run on
        nodes whose files are on this machine, its node folders (state, logs, outputs); and
        whether that covers every active run (else the drivers keep the short tick)."""
        folders, every = [str(self.ctx.paths.wake_dir)], True
        self.ctx.paths.wake_dir.mkdir(exist_ok=True)
        self._folder_runs = {}
        for run_id, driver in list(self.drivers.items()):
            for node, paths in zip(driver.nodes, driver.paths, strict=True):
                try:
                    local = isinstance(driver.compute.transport(node), LocalTransport)
                except Exception:  # noqa: BLE001 -- a node that cannot say is polled
                    local = False
                if local:
                    mine = [paths.run_dir, paths.stdouterr, paths.logs, paths.artifacts]
                    folders += mine
                    self._folder_runs.update(dict.fromkeys(mine, run_id))
                else:
                    every = False
        return folders, every

    def stop(self) -> None:
        self._stop = True

    def tick(self) -> list[Wait]:
        """One pass of the loop: every step once, each answering when it wants to run again."""
        waits = []
        for step in self.steps:
            try:
                waits.append(step.step(self.ctx))
            except Exception:  # a failing step is tried again next tick
                log.exception("engine step %s failed", step.name)
                waits.append(Wait.within(TICK))
        return waits

    def launch_extras(self, run: RunRow, compute: Compute) -> ManifestExtras:
        """Extra fields for the node manifest (datastore credentials, grace period)."""
        grace = float(os.environ.get("BATCHAI_KILL_GRACE", str(DEFAULT_KILL_GRACE_SECONDS)))
        extras: ManifestExtras = {"kill_grace_seconds": grace}
        spec = run["spec"]
        from ..node.container_config import REGISTRY_SECRETS, run_container
        extras["container"] = run_container(spec, compute.settings.options,
                                            lambda host: self.ctx.secrets.get(REGISTRY_SECRETS, host))
        if any(spec.get(k) for k in ("inputs", "outputs", "mounts", "cluster_mounts", "stdouterr")):
            from ..datastores.credentials import node_data_config
            extras["data"] = data_config(node_data_config(self.workspace, run))
        extras["job_user"] = compute.job_user()  # jobs as an unprivileged account (local run_as)
        if compute.config.get("setup_task"):  # a cluster's node setup (cluster.json nodeSetup)
            extras["setup_task"] = str(compute.config["setup_task"])
        return extras


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

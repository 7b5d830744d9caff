"""The engine: one process per workspace, the only writer of run state.

    python -m batchai_jupyter.engine serve --workspace PATH

The loop runs its steps in turn (steps.py, maintenance.py): apply intents (cancel, cluster
delete) -> step each run's driver (tail logs and metrics, follow state, finalize) -> schedule
queued runs onto nodes (gang, by priority then age) and launch them -> maintain clusters (scale
pools, advance deletions); schedules fire their due slots before the queue, and waiting parents
are followed after the drivers (an enabled schedule always has a next slot, so it keeps the
engine up). Each step answers a Wait; the loop sleeps until the earliest, or until a client
touches the wake folder or a local node's run folder changes (fs_events.py), and exits once
every step has had nothing to do for `idle_exit` seconds. A pass runs only the steps it concerns:
a changed run folder steps that run's driver; a change in history.db (a submit, an intent, a
run that started or ended, by the engine or a client) the history steps (intents, schedules,
queue, parents); a client's wake-up, the first pass and the fallback look (every WATCHED_TICK
while anything is active, IDLE_TICK otherwise) every step; and each step its own timer.
It holds engine.lock while alive; started on demand by clients. On start it reconciles
(reconcile.py): active runs are picked up from history.db and the nodes' files.
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
from typing import Any

from ..compute.base import Compute
from ..compute.transport import LocalTransport
from ..errors import ClusterError
from ..history import ACTIVE_STATUSES, RunHistory
from ..layout import WorkspacePaths
from ..node.fs_events import FolderEvents
from ..node.manifest import DEFAULT_KILL_GRACE_SECONDS, ManifestExtras, data_config
from ..records import RunRow
from ..schedules.clock import CLOCK_FILE_ENV
from ..schedules.store import ScheduleStore
from ..secrets_store import SecretStore
from ..snapshot import SnapshotStore
from .context import TICK, Computes, EngineContext, Step, Wait
from .control import info_path, lock_path, start_engine
from .maintenance import Deletions, MaintenanceStep
from .parents import ParentStep
from .reconcile import reconcile
from .runs import Drivers
from .steps import DriverStep, IntentStep, QueueStep, ScheduleStep

log = logging.getLogger("batchai_jupyter.engine")
MIN_SLEEP = 0.005  # the loop never spins: it sleeps at least this long between passes
#: while changes wake the engine (fs_events.py) and anything is active: how often every step
#: looks anyway, for what no event announces (runs' own looks: steps.py RUN_LOOK)
WATCHED_TICK = 5.0
#: the same with nothing active and no step due sooner: clients touch the wake folder, a run's
#: folder change wakes the engine, and a lost event (queue overflow) is a change of every folder
IDLE_TICK = 30.0
#: the steps a change in history.db concerns
HISTORY_STEPS = frozenset({"intents", "schedules", "queue", "parents", "maintenance"})  # a resize is a row


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
        self._watched: tuple[tuple[tuple[str, int, tuple[bool, ...]], ...], tuple[list[str], bool]] | None = None
        self._waits: dict[str, Wait] = {}  # each step's last answer
        self._version: tuple[int, int] = (-1, -1)  # history.db as the last pass left it
        self._relook = False  # history changed after the history steps of the last pass

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
        woken, looked = True, time.monotonic()  # the first pass looks at everything
        # a job's line, an agent's state change or a client's wake-up ends a sleep early
        # what only the agent reads (its manifest, host file, view) or the engine itself wrote
        # wakes nobody
        # a log that grows block by block wakes it once per MIN_SLEEP, not once per write
        with closing(FolderEvents(ignore=("heartbeat", "run.json", "hostfile", "view."),
                                  settle=MIN_SLEEP)) as events:
            while not self._stop:
                waits = self.tick(woken)
                due = [w.next_due for w in waits if w.next_due is not None]
                wake = [t for t in (w.wake_at for w in waits) if t is not None]
                now = time.time()
                if due:
                    idle_since = now
                elif self.idle_exit >= 0 and now - idle_since > self.idle_exit:
                    log.info("idle for %.0f s; exiting", self.idle_exit)
                    self.hand_over()
                    break
                folders, every_run_watched = self.watched_folders()
                events.watch(folders)
                added = events.take_added()
                if added:  # watched from now on: what changed there before was no event
                    woken = bool(added & self._own_folders())
                    self.driver_step.dirty = {self._folder_runs[f] for f in added if f in self._folder_runs}
                    continue  # so look at those runs (a wake folder: everything) before sleeping
                self.driver_step.relaxed = events.active and every_run_watched
                if not events.active:
                    cap = TICK
                else:
                    cap = looked + (WATCHED_TICK if due or self.drivers else IDLE_TICK) - time.monotonic()
                    if self.idle_exit >= 0 and not due:  # awake to exit in time
                        cap = min(cap, idle_since + self.idle_exit - now + MIN_SLEEP)
                events.wait(max(MIN_SLEEP, min(cap, min(wake) - now) if wake else cap))
                changed = events.take_changed()
                woken = bool(changed & self._own_folders()) or time.monotonic() - looked >= (
                    WATCHED_TICK if due or self.drivers else IDLE_TICK) or not events.active
                if woken:
                    looked = time.monotonic()
                # the next pass steps the runs whose folders changed (and those due a look anyway)
                self.driver_step.dirty = {self._folder_runs[f] for f in changed if f in self._folder_runs}
        self.computes.close_all()
        return 0

    def release(self) -> None:
        """Let go of the engine lock (an exiting engine; the process's end would too)."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def hand_over(self) -> None:
        """An idle engine exits: the lock goes first, then work that came meanwhile (a client
        that saw this engine still holding the lock started none) gets a successor."""
        self.release()
        try:
            if self._work_arrived():
                log.info("work came while exiting; starting a successor")
                start_engine(self.ctx.path)
        except Exception:  # the next client action starts one anyway
            log.exception("cannot hand over to a successor")

    def _work_arrived(self) -> bool:
        """Whether history.db holds what an engine must act on."""
        history = self.history
        return bool(history.queued_order() or history.pending_intents()
                    or history.run_rows(status=ACTIVE_STATUSES, limit=1)
                    or any(row.get("deleting") for row in history.cluster_rows())
                    or any(row["state"] == "enabled" for row in ScheduleStore(history).rows()))

    def _own_folders(self) -> set[str]:
        """The folders whose change concerns every step: the clients' wake folder and, when a
        file moves the schedules' clock (tests), that file's folder."""
        own = {str(self.ctx.paths.wake_dir)}
        clock = os.environ.get(CLOCK_FILE_ENV)
        if clock:
            own.add(str(Path(clock).parent))
        return own

    def watched_folders(self) -> tuple[list[str], bool]:
        """Where a change means work: the clients' wake folder and, for every active run on
        nodes whose files are on this machine, its node folders (state, logs, outputs); and
        whether that covers every active run (else the drivers keep the short tick)."""
        key = tuple((run_id, id(driver), _pushes(driver)) for run_id, driver in self.drivers.items())
        if self._watched is not None and self._watched[0] == key:
            return self._watched[1]  # the same drivers: the same folders
        self.ctx.paths.wake_dir.mkdir(exist_ok=True)
        folders, every = sorted(self._own_folders()), True
        self._folder_runs = {}
        for run_id, driver in list(self.drivers.items()):
            for node, paths in zip(driver.nodes, driver.paths, strict=True):
                try:
                    transport = driver.compute.transport(node)
                    local = isinstance(transport, LocalTransport)
                    # a host that pushes the run's files (compute/ssh/push.py) touches its files folder
                    # on news for the engine (its parent is watched: the log copies wake no one)
                    pushed = not local and getattr(transport, "pushes", lambda _d: False)(paths.run_dir)
                except Exception:  # noqa: BLE001 -- a node that cannot say is polled
                    local = pushed = False
                if local:
                    mine = [paths.run_dir, paths.stdouterr, paths.logs, paths.artifacts]
                    folders += mine
                    self._folder_runs.update(dict.fromkeys(mine, run_id))
                elif pushed:
                    folders.append(str(driver.files.parent))
                    self._folder_runs[str(driver.files.parent)] = run_id
                else:
                    every = False
        self._watched = (key, (folders, every))
        return folders, every

    def stop(self) -> None:
        self._stop = True

    def tick(self, woken: bool = True) -> list[Wait]:
        """One pass of the loop: each step that is due or that what happened concerns (see the
        module docstring), each answering when it wants to run again; the answers of all steps."""
        now = time.time()
        version = self._history_version()
        changed = woken or self._relook or version != self._version
        self._relook = False
        for step in self.steps:
            last = self._waits.get(step.name)
            wake_at = None if last is None else last.wake_at
            due = last is None or (wake_at is not None and wake_at <= now)
            if step is self.driver_step:
                due = due or self.driver_step.dirty is None or bool(self.driver_step.dirty)
            concerned = changed and step.name in HISTORY_STEPS
            if not (woken or due or concerned):
                continue
            try:
                self._waits[step.name] = step.step(self.ctx)
            except Exception:  # a failing step is tried again next tick
                log.exception("engine step %s failed", step.name)
                self._waits[step.name] = Wait.within(TICK)
            after = self._history_version()
            if after != version:  # the steps after this one look in this pass, those before next pass
                version, changed = after, True
                self._relook = self._relook or step.name not in HISTORY_STEPS
        self._version = version
        waits = list(self._waits.values())
        if self._relook:
            waits.append(Wait(now))
        return waits

    def _history_version(self) -> tuple[int, int]:
        """What changes when history.db does: this engine's writes, and other processes' commits."""
        return self.history.own_changes(), self.history.data_version()

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


def _pushes(driver: Any) -> tuple[bool, ...]:
    """Which of a run's nodes push its files now (compute/ssh/push.py): a channel that comes or
    goes changes what the loop watches for that run."""
    out = []
    for node, paths in zip(driver.nodes, driver.paths, strict=True):
        try:
            out.append(bool(getattr(driver.compute.transport(node), "pushes", lambda _d: False)(paths.run_dir)))
        except Exception:  # noqa: BLE001 -- a node that cannot say is polled
            out.append(False)
    return tuple(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchai_jupyter.engine")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--idle-exit", type=float, default=None,
                        help="seconds with nothing to do before exiting (-1: never)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(message)s")
    engine = Engine(Path(args.workspace), args.idle_exit)
    profile = os.environ.get("BATCHAI_ENGINE_PROFILE")
    if not profile:
        return engine.serve()
    # for maintainers (docs/engine.md): where the engine's time goes, written when it exits
    import cProfile
    profiler = cProfile.Profile()
    try:
        return profiler.runcall(engine.serve)
    finally:
        profiler.dump_stats(f"{profile}.{os.getpid()}")


if __name__ == "__main__":
    sys.exit(main())

"""The engine's per-tick steps: intents, the queue and the run drivers (maintenance.py: upkeep).

Each step does what is due and answers a Wait: when it wants to run again, or None when it has
nothing to do or to wait for. The loop (loop.py) sleeps and decides to exit from those answers.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from ..compute.base import Compute, NodePool
from ..compute.outcomes import Granted, Pending, Refused
from ..errors import BatchAIError
from ..records import RunRow
from ..schedules.runner import ScheduleRunner
from ..spec import JobSpec
from .context import TICK, EngineContext, Wait
from .driver import LOST_AFTER_SECONDS, RunDriver
from .maintenance import Deletions
from .runs import Drivers, cancel_run, fail_run

log = logging.getLogger("batchai_jupyter.engine")
#: how often each driver is looked at when changes wake the engine: what no event announces
#: (files in folders below ./logs, a node gone silent, a cancel's grace) is found at most this late
RUN_LOOK = min(2.0, LOST_AFTER_SECONDS / 4)
#: how often a queue that waits for a pool's nodes is tried when nothing happened (a freed node,
#: a new setting or a recovered one changes history.db, and that tries it at once)
POOL_RETRY = 1.0
#: the most one pass spends starting runs: a burst of submits is started over several passes,
#: and the runs already started are tailed in between
START_BUDGET = 0.02


class IntentStep:
    """What clients asked: cancel a run, delete a cluster."""

    name = "intents"

    def __init__(self, drivers: Drivers, deletions: Deletions):
        self.drivers = drivers
        self.deletions = deletions

    def step(self, ctx: EngineContext) -> Wait:
        for intent in ctx.history.pending_intents():
            try:
                if intent["kind"] == "cancel":
                    cancel_run(ctx, self.drivers, intent["target"])
                elif intent["kind"] == "delete_cluster":
                    self.deletions.start(intent["target"])
            except Exception:  # a bad intent must not stop the others
                log.exception("intent %s failed", intent)
            ctx.history.finish_intent(intent["id"])
        return Wait.idle()


class QueueStep:
    """Queued runs onto nodes, by priority then age; a gang at a cluster's head is not starved."""

    name = "queue"

    def __init__(self, drivers: Drivers, deletions: Deletions):
        self.drivers = drivers
        self.deletions = deletions
        self._gang: dict[str, int] = {}  # run id -> node_count, read from its spec once

    def _node_count(self, ctx: EngineContext, run: RunRow) -> int | None:
        """The run's gang size; a spec this engine cannot read fails that run alone."""
        if run["id"] not in self._gang:
            try:
                self._gang[run["id"]] = JobSpec.from_dict(run["spec"]).node_count
            except BatchAIError as exc:
                ctx.history.set_status(run["id"], "Failed", "unreadable spec", error={"message": str(exc)})
                return None
        return self._gang[run["id"]]

    def step(self, ctx: EngineContext) -> Wait:
        blocked: set[str] = set()
        began = time.monotonic()
        retry = POOL_RETRY
        queued = ctx.history.queued_order()
        if len(self._gang) > len(queued):  # forget runs that left the queue some other way
            ids = {run_id for run_id, _cluster in queued}
            self._gang = {k: v for k, v in self._gang.items() if k in ids}
        for run_id, cluster in queued:
            if cluster in blocked or cluster in self.deletions:
                continue  # strict order per cluster (unless the backend orders its own queue)
            if time.monotonic() - began > START_BUDGET:
                return Wait.within(0.0)  # the rest in the next pass, once started runs are tailed
            run = ctx.history.run_row(run_id)  # only the rows the queue looks at are read whole
            if run is None or run["status"] != "Queued":
                continue
            compute = ctx.compute(cluster)
            if compute is None:
                ctx.history.set_status(run["id"], "Failed", "unknown cluster",
                                       error={"message": f"cluster {cluster!r} does not exist"})
                continue
            count = self._node_count(ctx, run)
            if count is None:
                continue
            try:
                outcome = compute.allocate(run, count)
            except Exception:  # this run waits; the others go on
                log.exception("run %s: allocation failed; trying again", run["id"])
                outcome = Pending(f"waiting for {count} node(s) of cluster {cluster!r}")
            if isinstance(outcome, Pending):
                if not compute.queues_itself:
                    blocked.add(cluster)
                if not isinstance(compute, NodePool):  # its grant comes by no event of ours
                    retry = TICK
                self._note_waiting(ctx, run, outcome)
            elif isinstance(outcome, Refused):
                fail_run(ctx, run["id"], outcome.message, exit_codes={})
            else:
                self._start(ctx, run, compute, outcome)
        if ctx.history.queued_order():
            return Wait.within(retry)
        return Wait.idle()

    @staticmethod
    def _note_waiting(ctx: EngineContext, run: RunRow, pending: Pending) -> None:
        props = dict(run["properties"], **pending.properties)
        props["waiting"] = pending.reason
        if props != run["properties"]:
            ctx.history.update_run(run["id"], properties=props)

    def _start(self, ctx: EngineContext, run: RunRow, compute: Compute, granted: Granted) -> None:
        """Mark the run Preparing on its nodes and launch it; a launch that fails fails the run."""
        self._gang.pop(run["id"], None)
        node_rows = [{"id": n.id, "address": n.address, "info": n.info} for n in granted.nodes]
        fields: dict[str, Any] = {"nodes": node_rows}
        if granted.properties:
            fields["properties"] = dict(run["properties"], **granted.properties)
        ctx.history.set_status(run["id"], "Preparing", None, **fields)
        row = ctx.history.run_row(run["id"]) or run
        driver: RunDriver | None = None
        try:
            driver = RunDriver(ctx, row, compute, granted.nodes)
            self.drivers[row["id"]] = driver
            driver.launch()
        except Exception as exc:  # this run fails; the others go on
            log.exception("run %s: launch failed", row["id"])
            self.drivers.pop(row["id"], None)
            if driver is not None:
                driver.fail(f"launch failed: {exc}")
            else:
                fail_run(ctx, row["id"], f"launch failed: {exc}", compute)


class DriverStep:
    """Each active run's driver: tail, follow its state, finalize it."""

    name = "drivers"

    def __init__(self, drivers: Drivers):
        self.drivers = drivers
        #: every active run's node folders are watched (engine loop): changes wake the engine,
        #: so each driver is looked at every RUN_LOOK only, or when its folders changed
        self.relaxed = False
        #: while relaxed, the runs whose folders changed since the last pass (None: every run);
        #: the others are looked at once every RUN_LOOK
        self.dirty: set[str] | None = None
        self._looked: dict[str, float] = {}  # run id -> when its driver was stepped (time.time())

    def step(self, ctx: EngineContext) -> Wait:
        now = time.time()
        for run_id, driver in list(self.drivers.items()):
            if (self.relaxed and self.dirty is not None and run_id not in self.dirty
                    and now - self._looked.get(run_id, -RUN_LOOK) < RUN_LOOK):
                continue
            self._looked[run_id] = now
            try:
                if driver.step():
                    del self.drivers[run_id]
            except Exception:  # one bad run must not stop the others
                log.exception("run %s: step failed", run_id)
        self.dirty = set()  # what changed is handled; the loop says what changes next
        if len(self._looked) > len(self.drivers):
            self._looked = {k: v for k, v in self._looked.items() if k in self.drivers}
        if not self.drivers:
            return Wait.idle()
        if not self.relaxed:
            return Wait.within(TICK)
        return Wait(min(self._looked.get(k, now) for k in self.drivers) + RUN_LOOK)


class ScheduleStep:
    """The workspace's schedules (schedules/runner.py): fire what is due, wake for the next slot."""

    name = "schedules"

    def __init__(self) -> None:
        self.runner: ScheduleRunner | None = None

    def step(self, ctx: EngineContext) -> Wait:
        if self.runner is None:
            self.runner = ScheduleRunner(ctx.history, ctx.clock)
        return Wait(self.runner.tick(ctx))

"""Upkeep: each cluster's maintain() once a second, node disk (node_disk.py), and cluster
deletions, a step each tick.

Deleting a cluster never blocks the loop. A deletion (asked by a delete_cluster intent, or
found as a cluster row marked `deleting` after an engine restart) advances every tick: cancel
the cluster's active runs, wait until their drivers are final (at most DELETE_WAIT_SECONDS),
then give the nodes back (Compute.delete), close the Compute and remove the row.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from ..history import ACTIVE_STATUSES
from .context import TICK, EngineContext, Wait
from .node_disk import NodeDisk
from .runs import Drivers, cancel_run

log = logging.getLogger("batchai_jupyter.engine")
MAINTAIN_EVERY = 1.0
DELETE_WAIT_SECONDS = 30.0  # a deleted cluster's runs get this long to end before it goes


@dataclass
class Deletion:
    name: str
    started: float = field(default_factory=time.time)
    canceled: set[str] = field(default_factory=set)  # runs already asked to stop


class Deletions:
    """The clusters being deleted."""

    def __init__(self) -> None:
        self._active: dict[str, Deletion] = {}

    def start(self, name: str) -> None:
        self._active.setdefault(name, Deletion(name))

    def __contains__(self, name: object) -> bool:
        return name in self._active

    def __bool__(self) -> bool:
        return bool(self._active)

    def pending(self) -> list[Deletion]:
        return list(self._active.values())

    def done(self, name: str) -> None:
        self._active.pop(name, None)


class MaintenanceStep:
    """Scale pools, act on nodes a resize took away, advance cluster deletions."""

    name = "maintenance"

    def __init__(self, drivers: Drivers, deletions: Deletions):
        self.drivers = drivers
        self.deletions = deletions
        self.disk = NodeDisk()
        self._last = 0.0
        self._scale_down: float | None = None  # when a node above min_nodes may go next

    def step(self, ctx: EngineContext) -> Wait:
        for deletion in self.deletions.pending():
            self._advance(ctx, deletion)
        if time.time() - self._last > MAINTAIN_EVERY:
            self._last = time.time()
            self._maintain(ctx)
        self._scale_down = self._scale_down_at(ctx)  # the step runs on its timer, a wake-up or a cluster change
        if self.deletions:
            return Wait.within(TICK)
        if self._scale_down is not None:  # the engine stays up to scale down, and wakes for it
            return Wait(max(self._scale_down, self._last + MAINTAIN_EVERY))
        # upkeep (resizes, unusable nodes' retries) once a second while runs are active
        return Wait(look_at=self._last + MAINTAIN_EVERY) if self.drivers else Wait.idle()

    def _maintain(self, ctx: EngineContext) -> None:
        for row in ctx.history.cluster_rows():
            name = row["name"]
            if row.get("deleting"):
                self.deletions.start(name)  # also one an earlier engine did not finish
            if name in self.deletions:
                continue
            try:
                compute = ctx.compute(name)
                actions = compute.maintain() if compute is not None else []
            except Exception:  # one cluster's trouble must not stop the others
                log.exception("cluster %s: maintain failed", name)
                continue
            for action in actions:
                driver = self.drivers.get(action.run_id)
                if driver is not None:
                    driver.evict(action.requeue)
        self.disk.upkeep(ctx)

    @staticmethod
    def _scale_down_at(ctx: EngineContext) -> float | None:
        """When the next node above a cluster's min_nodes may be scaled down (an idle one once
        its idle time is over; a busy one is looked at again in a second); None: no node is."""
        times = []
        for row in ctx.history.cluster_rows():
            nodes = [n for n in ctx.history.nodes(row["name"]) if n["state"] != "unusable"]
            if len(nodes) <= int(row.get("min_nodes", 0)):
                continue
            if len(nodes) > int(row.get("max_nodes", len(nodes))):
                times.append(time.time())  # resized below its nodes: at the next upkeep
                continue
            limit = float(row.get("idle_seconds_before_scaledown", 0) or 0)
            times += [n["since"] + limit if n["state"] == "idle" else time.time() + MAINTAIN_EVERY
                      for n in nodes]
        return min(times) if times else None

    # -- deleting a cluster --------------------------------------------------------------------
    def _advance(self, ctx: EngineContext, deletion: Deletion) -> None:
        try:
            if self._advance_once(ctx, deletion):
                self.deletions.done(deletion.name)
        except Exception:  # tried again next tick, until the wait is over
            log.exception("cluster %s: deletion failed", deletion.name)
            if time.time() - deletion.started > DELETE_WAIT_SECONDS:
                self.deletions.done(deletion.name)
                ctx.history.delete_cluster(deletion.name)
                ctx.computes.drop(deletion.name)

    def _advance_once(self, ctx: EngineContext, deletion: Deletion) -> bool:
        """One step of a deletion; True once the cluster is gone."""
        name = deletion.name
        for run in ctx.history.run_rows(status=ACTIVE_STATUSES, cluster=name):
            if run["status"] == "Queued" or run["id"] not in deletion.canceled:
                deletion.canceled.add(run["id"])
                cancel_run(ctx, self.drivers, run["id"])
        busy = any(d.compute.name == name for d in self.drivers.values())
        if busy and time.time() - deletion.started < DELETE_WAIT_SECONDS:
            return False
        compute = ctx.compute(name)
        if compute is not None:
            compute.delete()
        ctx.computes.drop(name)
        ctx.history.delete_cluster(name)
        log.info("cluster %s deleted", name)
        return True

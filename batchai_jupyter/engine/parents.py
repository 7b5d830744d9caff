"""ParentStep: the engine follows waiting parents (rules in parent_rules.py).

Each pass it is asked for (when history.db changed, and four times a second while any parent
waits) it counts each waiting parent's active children into its properties, cancels the
children of a parent that was canceled, and ends a parent once its last child has ended.
"""
from __future__ import annotations

import os
import time

from ..history import ACTIVE_STATUSES
from ..records import RunRow
from .context import EngineContext, Wait
from .parent_rules import CHILDREN, EMPTY_PARENT_SECONDS, OWN_OUTCOME, outcome, waits_for_children
from .runs import Drivers, cancel_run

_EVERY = 0.25


class ParentStep:
    """Ends waiting parents when their last child has ended; cancels the children of a canceled one."""

    name = "parents"

    def __init__(self, drivers: Drivers):
        self.drivers = drivers
        self._last = 0.0
        self._waiting = False  # were there waiting parents at the last pass?

    def step(self, ctx: EngineContext) -> Wait:
        if time.monotonic() - self._last < _EVERY:  # looked a moment ago: again once the time is up
            return Wait(look_at=time.time() + self._last + _EVERY - time.monotonic())
        self._last = time.monotonic()
        waiting = [r for r in ctx.history.run_rows(status=("Running", "CancelRequested"))
                   if r["id"] not in self.drivers and waits_for_children(r)]
        for parent in waiting:
            self._follow(ctx, parent)
        self._waiting = bool(waiting)
        return Wait.within(_EVERY) if self._waiting else Wait.idle()

    def _follow(self, ctx: EngineContext, parent: RunRow) -> None:
        if parent["started"] is None:  # a parent without a process is Running from its submit
            ctx.history.update_run(parent["id"], started=parent["created"])
        children = ctx.history.run_rows(parent_id=parent["id"])
        active = [c for c in children if c["status"] in ACTIVE_STATUSES]
        if parent["status"] == "CancelRequested":
            for child in active:
                if not child["cancel_requested"]:
                    cancel_run(ctx, self.drivers, child["id"])
        if active:
            counts = {"active": len(active), "ended": len(children) - len(active)}
            if parent["properties"].get(CHILDREN) != counts:
                ctx.history.update_run(parent["id"], properties=dict(parent["properties"], **{CHILDREN: counts}))
            return
        if not children and OWN_OUTCOME not in parent["properties"] and parent["status"] == "Running":
            empty = float(os.environ.get("BATCHAI_EMPTY_PARENT_SECONDS", EMPTY_PARENT_SECONDS))
            if time.time() - parent["created"] < empty:
                return
        status, error, message = outcome(parent, children)
        props = dict(parent["properties"], **{CHILDREN: {"active": 0, "ended": len(children)}})
        ctx.history.set_status(parent["id"], status, message, error=error, properties=props)
        ctx.log.info("parent run %s %s", parent["id"], status)

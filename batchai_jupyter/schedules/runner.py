"""The engine's schedule pass: every slot that came due gets exactly one outcome.

Each pass, for each schedule: finish fires a killed engine left half done (claimed, run not yet
inserted), start a fire that waited for the previous run (overlap="queue"), then deal with the
slots between the schedule's cursor and now:
- paused: recorded `paused`;
- on time (at most BATCHAI_SCHEDULE_GRACE_SECONDS late): fired, subject to `overlap`;
- later than that (the engine was down): `catchup` decides — none: all `missed`; latest: the
  newest fires and the others are `missed`; all: each fires.
The pass answers when the next slot is due, so the engine stays up while a schedule is enabled
and wakes in time. It imports nothing of the engine: engine/steps.py wraps it as a step.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .firing import Backing, finish, start
from .options import ScheduleOptions
from .store import FireRow, ScheduleRow, ScheduleStore, VersionRow
from .timing import next_slots, slots_between

if TYPE_CHECKING:
    from ..history import RunHistory

log = logging.getLogger("batchai_jupyter.engine")
#: how late a slot may be found and still count as on time (seconds)
DEFAULT_GRACE_SECONDS = 60.0
#: a fire claimed this long ago whose run is not in yet was left by a process that died
STALE_CLAIM_SECONDS = 5.0


def grace_seconds() -> float:
    return float(os.environ.get("BATCHAI_SCHEDULE_GRACE_SECONDS", DEFAULT_GRACE_SECONDS))


def record_skipped(store: ScheduleStore, row: ScheduleRow, options: ScheduleOptions, until: float,
                   outcome: str, reason: str) -> int:
    """Record every slot between the cursor and `until` with this outcome (paused slots)."""
    slots = slots_between(options, row["cursor"], until, row["anchor"])
    for slot in slots:
        store.claim(row["name"], row["version"], slot, "scheduled", outcome, reason)
    return len(slots)


class ScheduleRunner:
    """Fires the workspace's schedules; `tick()` returns when it wants to run next (None: idle)."""

    def __init__(self, history: RunHistory, clock: Callable[[], float]):
        self.store = ScheduleStore(history)
        self.clock = clock
        # keyed by the schedule's creation time too: a schedule deleted and made again is new
        self._versions: dict[tuple[str, float, int], VersionRow] = {}
        self._next: dict[tuple[str, float, int, float], float | None] = {}  # (.., cursor) -> next slot
        self._failed: dict[str, float] = {}  # name -> no new try before (a pass that raised)

    def tick(self, ws: Backing) -> float | None:
        """One pass over every schedule; the real time (time.time()) the next slot is due."""
        now = self.clock()
        due: list[float] = []
        for row in self.store.rows():
            if row["state"] == "ended" or self._failed.get(row["name"], 0.0) > time.time():
                continue
            version = self._version(row)
            if version is None:
                continue
            options = ScheduleOptions.from_dict(version["options"])
            try:
                when = self._schedule(ws, row, version, options, now)
            except Exception:  # one schedule must not stop the others; tried again in 10 s
                log.exception("schedule %s: pass failed", row["name"])
                self._failed[row["name"]] = time.time() + 10.0
                when = now + 10.0
            if when is not None and row["state"] == "enabled":
                due.append(when)
        if not due:
            return None
        return time.time() + max(0.0, min(due) - now)

    def _version(self, row: ScheduleRow) -> VersionRow | None:
        key = (row["name"], row["created"], row["version"])
        if key not in self._versions:
            version = self.store.version(row["name"], row["version"])
            if version is None:
                return None
            self._versions[key] = version
        return self._versions[key]

    def _schedule(self, ws: Backing, row: ScheduleRow, version: VersionRow, options: ScheduleOptions,
                  now: float) -> float | None:
        name = row["name"]
        pending = self.store.pending(name)
        if pending:
            self._pending(ws, version, pending, now)
        key = (name, row["created"], row["version"], row["cursor"])
        nxt = self._next.get(key, 0.0)
        if nxt is not None and nxt <= now:
            if row["state"] == "paused":
                record_skipped(self.store, row, options, now, "paused", "the schedule was paused")
            else:
                self._fire_due(ws, row, version, options, now)
            fresh = self.store.row(name) or row
            following = next_slots(options, max(fresh["cursor"], now), fresh["anchor"], 1)
            nxt = following[0] if following else None
            self._next = {(name, fresh["created"], fresh["version"], fresh["cursor"]): nxt,
                          **{k: v for k, v in self._next.items() if k[0] != name}}
            if nxt is None and not self.store.pending(name):
                self.store.set_state(name, "ended")
                log.info("schedule %s ended (no slot after end_at)", name)
        if any(f["outcome"] == "waiting" for f in pending):
            return now + 0.5
        return nxt

    def _pending(self, ws: Backing, version: VersionRow, pending: list[FireRow], now: float) -> None:
        active = self.store.active_runs(version["schedule"])
        for fire in pending:
            fire_version = version if fire["version"] == version["version"] else \
                self.store.version(fire["schedule"], fire["version"]) or version
            if fire["outcome"] == "submitting" and time.time() - fire["recorded"] > STALE_CLAIM_SECONDS:
                log.info("schedule %s: finishing the fire of slot %s a stopped process left", fire["schedule"],
                         fire["slot"])
                finish(ws, self.store, fire, fire_version)
            elif fire["outcome"] == "waiting" and not active:
                self.store.set_outcome(fire["id"], "submitting", fire["reason"])
                started = finish(ws, self.store, dict(fire, outcome="submitting"),  # type: ignore[arg-type]
                                 fire_version)
                if started["run_id"]:
                    active = [(started["run_id"], "Queued")]

    def _fire_due(self, ws: Backing, row: ScheduleRow, version: VersionRow, options: ScheduleOptions,
                  now: float) -> None:
        slots = slots_between(options, row["cursor"], now, row["anchor"])
        grace = grace_seconds()
        late = [s for s in slots if now - s > grace]
        on_time = [s for s in slots if now - s <= grace]
        fire: list[tuple[float, str]] = [(s, "scheduled") for s in on_time]
        missed: list[float] = []
        if late:
            if options.catchup == "all":
                fire = [(s, "catchup") for s in late] + fire
            elif options.catchup == "latest" and not on_time:
                missed, fire = late[:-1], [(late[-1], "catchup")]
            else:
                missed = late
        for slot in missed:
            self.store.claim(row["name"], row["version"], slot, "scheduled", "missed",
                             f"the engine was not running at this time (catchup={options.catchup!r})")
        active = self.store.active_runs(row["name"])  # runs of earlier passes only
        waiting = any(f["outcome"] == "waiting" for f in self.store.pending(row["name"]))
        for slot, kind in fire:
            self._one(ws, row, version, options, slot, kind, active, waiting)
            waiting = waiting or (options.overlap == "queue" and bool(active))

    def _one(self, ws: Backing, row: ScheduleRow, version: VersionRow, options: ScheduleOptions, slot: float,
             kind: str, active: list[tuple[str, str]], waiting: bool) -> None:
        name = row["name"]
        if active or waiting:
            running = ", ".join(f"{rid} ({status})" for rid, status in active) or "a queued fire"
            if options.overlap == "skip":
                self.store.claim(name, row["version"], slot, kind, "skipped_overlap",
                                 f"the previous run is still active: {running}")
                return
            if options.overlap == "queue":
                self.store.claim(name, row["version"], slot, kind, "waiting",
                                 f"waits for the previous run to end: {running}")
                return
            if options.overlap == "cancel_previous":
                for run_id, _status in active:
                    ws.history.add_intent("cancel", run_id)
        fired = start(ws, self.store, version, slot, kind)
        if fired is not None:
            log.info("schedule %s: slot %s %s (run %s)", name, slot, fired["outcome"], fired["run_id"])

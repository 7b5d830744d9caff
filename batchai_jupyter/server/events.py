"""The events feed: status changes from the history, node state changes and schedule fires.

`seq` is the rowid of the history's `events` table, so a client that reconnects with
`after=SEQ` gets every run.status event it missed (read back from the history). node.state
and schedule.fired are seen by diffing on each poll; they carry the seq of the last status
event and are pushed live only (after a reconnect, GET /clusters and /schedules say the state).
One poll serves every socket; it runs at most every `poll_seconds`, and only while a socket
is open (and `idle_seconds` after the last one closed). GET /events reads the history itself.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from ..schedules.store import ScheduleStore
from ..workspace import Workspace

Event = dict[str, Any]
Listener = Callable[[list[Event]], None]
PAGE = 500


def run_status_events(ws: Workspace, after: int, limit: int = PAGE) -> list[Event]:
    """run.status events after `after`, oldest first (what a reconnecting client missed)."""
    return [{"seq": r["seq"], "type": "run.status", "run_id": r["run_id"], "status": r["status"], "ts": r["ts"],
             "message": r["message"], "experiment": r["experiment"], "parent_id": r["parent_id"],
             "cluster": r["cluster"]} for r in ws.history.events_after(after, limit)]


class _Watch:
    """What the last poll saw (blocking reads; the hub runs them in the service's pool)."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.seq = ws.history.last_event_seq()
        self.nodes = self._nodes()
        self.fire_id = self._last_fire_id()

    def _nodes(self) -> dict[tuple[str, str], tuple[str, str | None, str | None]]:
        return {(c.name, r["id"]): (r["state"], r["run_id"], r["error"])
                for c in self.ws.history.cluster_configs() for r in self.ws.history.nodes(c.name)}

    def _fires(self) -> list[Any]:
        store = ScheduleStore(self.ws.history)
        return [f for name in store.names() for f in store.fires(name, 5)]

    def _last_fire_id(self) -> int:
        return max((f["id"] for f in self._fires()), default=0)

    def poll(self) -> list[Event]:
        events = run_status_events(self.ws, self.seq, 10 * PAGE)
        if events:
            self.seq = events[-1]["seq"]
        nodes = self._nodes()
        for key, (state, run_id, error) in sorted(nodes.items()):
            before = self.nodes.get(key)
            if before is None or before[0] != state:
                events.append({"seq": self.seq, "type": "node.state", "cluster": key[0], "node": key[1],
                               "state": state, "previous": before[0] if before else None, "run_id": run_id,
                               "reason": error})
        for key in sorted(set(self.nodes) - set(nodes)):
            events.append({"seq": self.seq, "type": "node.state", "cluster": key[0], "node": key[1],
                           "state": "removed", "previous": self.nodes[key][0], "run_id": None, "reason": None})
        self.nodes = nodes
        for fire in sorted((f for f in self._fires() if f["id"] > self.fire_id), key=lambda f: f["id"]):
            events.append({"seq": self.seq, "type": "schedule.fired", "schedule": fire["schedule"],
                           "scheduled_time": fire["slot"], "kind": fire["kind"], "outcome": fire["outcome"],
                           "reason": fire["reason"], "run_id": fire["run_id"]})
            self.fire_id = max(self.fire_id, fire["id"])
        return events


class EventHub:
    """One polling task for all listeners; started by the first, stopped when idle."""

    def __init__(self, ws: Workspace, call: Callable[..., Any], poll_seconds: float, idle_seconds: float,
                 log: Any):
        self.ws = ws
        self._call = call  # Service.call: blocking work in the pool
        self.poll_seconds = max(poll_seconds, 0.5)
        self.idle_seconds = idle_seconds
        self.log = log
        self._listeners: set[Listener] = set()
        self._task: asyncio.Task[None] | None = None
        self._watch: _Watch | None = None
        self._left = 0.0
        self._watching = asyncio.Event()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.add(listener)
        self._start()

    def unsubscribe(self, listener: Listener) -> None:
        """The feed goes on `idle_seconds` after the last listener left: a client that reconnects
        meanwhile misses no node change (a fresh start would diff from the state it finds)."""
        if listener in self._listeners:
            self._listeners.discard(listener)
            self._left = time.monotonic()

    async def watching(self) -> None:
        """Wait until the feed has its first view: every status change after it will be pushed,
        so a client reads its backlog from the history after this, and misses nothing between."""
        waiter = asyncio.ensure_future(self._watching.wait())
        assert self._task is not None  # subscribe() started it
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            waiter.cancel()
            raise RuntimeError("the events feed stopped (the server log has why)")

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def _active(self) -> bool:
        return bool(self._listeners) or time.monotonic() - self._left < self.idle_seconds

    async def _loop(self) -> None:
        try:
            if self._watch is None:
                self._watch = await self._call(_Watch, self.ws)
            self._watching.set()
            while self._active():
                events = await self._call(self._watch.poll)
                if events:
                    for listener in list(self._listeners):
                        listener(events)
                await asyncio.sleep(self.poll_seconds)
        except Exception:  # logged with its traceback; the next subscriber starts the feed again
            self.log.exception("the batchai events feed stopped")
            raise
        finally:
            self._watching.clear()
            if not self._active():
                self._watch = None  # a later start diffs from a fresh view, not a stale one

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

"""The events route (GET: a page of what the history recorded; WebSocket: the same, pushed)
and the log follow WebSocket. Authenticated like jupyter_server's own sockets."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..errors import BatchAIError, FileNotInRun
from . import logs
from .errors import ApiError, from_exception
from .events import PAGE, Event, EventHub, run_status_events
from .query import parse_limit
from .service import Service

FOLLOW_BYTES = 1024 * 1024


class _Socket(WebSocketMixin, WebSocketHandler, JupyterHandler):
    @property
    def service(self) -> Service:
        service: Service = self.settings["batchai_service"]
        return service

    def arg(self, name: str) -> str | None:
        values = self.request.query_arguments.get(name) or []
        return values[-1].decode("utf-8", "replace") if values else None

    def send(self, message: dict[str, Any]) -> bool:
        try:
            self.write_message(json.dumps(message))
        except WebSocketClosedError:
            return False
        return True

    def refuse(self, exc: BaseException) -> None:
        """Before the upgrade: a JSON error answer like every other route's."""
        mapped = from_exception(exc)
        if mapped is None:
            raise exc
        self.set_status(mapped.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(mapped.body()))

    def is_upgrade(self) -> bool:
        return self.request.headers.get("Upgrade", "").lower() == "websocket"


class EventsHandler(_Socket):
    """GET /events?after=SEQ: `{events, seq}`; with `Upgrade: websocket` the events pushed."""

    after = 0
    hub: EventHub | None = None
    _ready = False
    _held: list[Event]

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        try:
            self.after = parse_limit(self.arg("after"), "after", 0, 2**62, 0)
            ws = self.service.ws()
        except ApiError as exc:
            self.refuse(exc)
            return
        if not self.is_upgrade():
            events = await self.service.call(run_status_events, ws, self.after, PAGE)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"events": events, "seq": events[-1]["seq"] if events else self.after}))
            return
        self.hub = self.settings["batchai_hub_factory"](ws)
        await super().get(*args, **kwargs)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        """Push what the history has after `after`, then what the hub sees (nothing twice)."""
        assert self.hub is not None
        self._held = []
        self.hub.subscribe(self._on_events)
        await self.hub.watching()
        ws = self.service.ws()
        while True:
            backlog = await self.service.call(run_status_events, ws, self.after, PAGE)
            for event in backlog:
                self._push(event)
            if len(backlog) < PAGE:
                break
        self._ready = True
        held, self._held = self._held, []
        self._on_events(held)

    def _on_events(self, events: list[Event]) -> None:
        if not self._ready:
            self._held.extend(events)
            return
        for event in events:
            if event["type"] != "run.status" or event["seq"] > self.after:
                self._push(event)

    def _push(self, event: Event) -> None:
        if event["type"] == "run.status":
            if event["seq"] <= self.after:
                return
            self.after = event["seq"]
        if not self.send(event) and self.hub is not None:
            self.hub.unsubscribe(self._on_events)

    def on_message(self, message: str | bytes) -> None:
        pass  # the feed is one way

    def on_close(self) -> None:
        if self.hub is not None:
            self.hub.unsubscribe(self._on_events)


class LogFollowHandler(_Socket):
    """WS /runs/{id}/logs/{file}/follow?offset=N (or tail_lines=N): chunks as GET .../logs/{file}
    answers them, pushed as the file grows; the last has `complete: true`, then the socket closes."""

    _task: asyncio.Task[None] | None = None

    @ws_authenticated
    async def get(self, run_id: str, name: str) -> None:
        try:
            self.offset = parse_limit(self.arg("offset"), "offset", 0, 2**62, 0)
            tail = self.arg("tail_lines")
            self.tail_lines = None if tail is None else parse_limit(tail, "tail_lines", 1000, logs.MAX_TAIL_LINES, 1)
            await self.service.call(lambda: self.service.files.is_final(run_id))
        except (ApiError, BatchAIError) as exc:
            self.refuse(exc)
            return
        if not self.is_upgrade():
            raise web.HTTPError(400, "this route is a WebSocket (GET .../logs/{file} reads by offset)")
        self.run_id, self.name = run_id, name
        await super().get(run_id, name)

    def open(self, *args: Any, **kwargs: Any) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        files = self.service.files
        poll = self.settings["batchai_poll_seconds"]
        first = True
        while True:
            try:
                if first and self.tail_lines is not None:
                    chunk = await self.service.call(files.read_log, self.run_id, self.name, 0, 0, self.tail_lines)
                else:
                    chunk = await self.service.call(files.read_log, self.run_id, self.name, self.offset,
                                                    FOLLOW_BYTES, None)
            except FileNotInRun:  # not written yet
                if await self.service.call(files.is_final, self.run_id):
                    self.send({"text": "", "offset": self.offset, "next_offset": self.offset, "size": 0,
                               "complete": True})
                    self.close()
                    return
                await asyncio.sleep(poll)
                continue
            if chunk["size"] < self.offset:  # replaced (a requeue): from its start
                self.offset = 0
                continue
            if (first or chunk["text"] or chunk["complete"]) and not self.send(chunk):
                return
            first = False
            self.offset = chunk["next_offset"]
            if chunk["complete"]:
                self.close()
                return
            if chunk["next_offset"] >= chunk["size"]:
                await asyncio.sleep(poll)

    def on_message(self, message: str | bytes) -> None:
        pass

    def on_close(self) -> None:
        if self._task is not None:
            self._task.cancel()

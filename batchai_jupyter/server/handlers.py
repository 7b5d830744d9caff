"""Thin REST handlers: parse the request, await the service, write JSON (docs/lab.md).

Errors: our typed ones become `{code, message, hint}` with a 4xx status through one mapper
(errors.py); anything else is a 500 `internal`, logged with its traceback.
"""
from __future__ import annotations

import json
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from . import facets, logs
from .errors import ApiError, from_exception, invalid
from .query import parse_limit, parse_run_filter
from .service import Service

FILE_CHUNK = 1024 * 1024
MAX_METRIC_POINTS = 10_000


class ApiHandler(APIHandler):
    """The base of every route: the service, query arguments, JSON answers and errors."""

    @property
    def service(self) -> Service:
        service: Service = self.settings["batchai_service"]
        return service

    def query_args(self) -> dict[str, list[str]]:
        return {k: [v.decode("utf-8", "replace") for v in vs] for k, vs in self.request.query_arguments.items()}

    def body_json(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError as exc:
            raise invalid("body", f"is not JSON: {exc}", "a JSON object") from None
        if not isinstance(body, dict):
            raise invalid("body", "must be a JSON object", "{...}")
        return body

    def answer(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        mapped = from_exception(exc) if exc is not None else None
        if mapped is None:
            if isinstance(exc, tornado.web.HTTPError):
                reason = exc.log_message or exc.reason or self._reason
                mapped = ApiError(status_code, "forbidden" if status_code == 403 else "http",
                                  reason % exc.args if exc.args and exc.log_message else str(reason),
                                  "send the Jupyter token (and the _xsrf cookie and X-XSRFToken header "
                                  "for anything but GET)" if status_code in (401, 403) else "")
            else:
                mapped = ApiError(500, "internal", f"{type(exc).__name__}: {exc}" if exc else self._reason,
                                  "see the Jupyter server's log for the traceback")
        self.set_status(mapped.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(mapped.body()))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Our typed errors are answers, not faults: one line, no traceback."""
        if value is not None and from_exception(value) is not None:
            self.log.info("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)


class CapabilitiesHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.answer(await self.service.call(self.service.capabilities))


class ClustersHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.answer(await self.service.call(lambda: self.service.clusters.clusters()))


class NodesHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        self.answer(await self.service.call(lambda: self.service.clusters.nodes(name)))


class ResizeHandler(ApiHandler):
    @tornado.web.authenticated
    async def post(self, name: str) -> None:
        body = self.body_json()
        self.answer(await self.service.call(lambda: self.service.clusters.resize(name, body)))


class ExperimentsHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        ws = self.service.ws()
        self.answer(await self.service.call(facets.experiments, ws))


class TagsHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        ws = self.service.ws()
        self.answer(await self.service.call(facets.tags, ws))


class RunsHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        await self.page(None)

    async def page(self, parent_id: str | None) -> None:
        filt = parse_run_filter(self.query_args(), parent_id)
        if parent_id is not None:
            await self.service.call(lambda: self.service.runs.row(parent_id))
        text, etag = await self.service.page_text(filt)
        self.set_header("ETag", etag)
        self.set_header("Cache-Control", "no-cache")
        if etag in [t.strip() for t in self.request.headers.get("If-None-Match", "").split(",")]:
            self.set_status(304)
            self.finish()
            return
        self.set_header("Content-Type", "application/json")
        self.finish(text)

    def compute_etag(self) -> str | None:
        return None  # set by page() above, from the body

    @tornado.web.authenticated
    async def post(self) -> None:
        body = self.body_json()
        row, created = await self.service.call(lambda: self.service.runs.submit(body))
        self.answer(row, 201 if created else 200)


class ChildrenHandler(RunsHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        await self.page(run_id)

    async def post(self, *args: Any) -> None:
        raise tornado.web.HTTPError(405)


class RunHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        self.answer(await self.service.call(lambda: self.service.runs.details(run_id)))

    @tornado.web.authenticated
    async def delete(self, run_id: str) -> None:
        await self.service.call(lambda: self.service.runs.delete(run_id))
        self.set_status(204)
        self.finish()


class RunActionHandler(ApiHandler):
    @tornado.web.authenticated
    async def post(self, run_id: str, action: str) -> None:
        runs = self.service.runs
        if action == "cancel":
            self.answer(await self.service.call(runs.cancel, run_id))
        else:
            self.answer(await self.service.call(runs.rerun, run_id), 201)


class RunEventsHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        self.answer(await self.service.call(lambda: self.service.runs.events(run_id)))


class LogsHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        self.answer(await self.service.call(lambda: self.service.files.log_files(run_id)))


class LogHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str, name: str) -> None:
        args = self.query_args()
        offset = parse_limit(_one(args, "offset"), "offset", 0, 2**62, 0)
        limit = parse_limit(_one(args, "limit"), "limit", logs.DEFAULT_LIMIT, logs.MAX_LIMIT, 0)
        tail = _one(args, "tail_lines")
        tail_lines = None if tail is None else parse_limit(tail, "tail_lines", 1000, logs.MAX_TAIL_LINES, 1)
        files = self.service.files
        self.answer(await self.service.call(files.read_log, run_id, name, offset, limit, tail_lines))


class MetricsHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        self.answer(await self.service.call(lambda: self.service.files.metrics(run_id)))


class MetricHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str, name: str) -> None:
        max_points = parse_limit(_one(self.query_args(), "max_points"), "max_points", 1000, MAX_METRIC_POINTS, 2)
        files = self.service.files
        self.answer(await self.service.call(files.metric, run_id, name, max_points))


class FileHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str, name: str) -> None:
        path = await self.service.call(lambda: self.service.files.file(run_id, name))
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Disposition", f"attachment; filename=\"{path.name.replace(chr(34), '')}\"")
        fh = await self.service.call(open, path, "rb")
        with fh:
            while True:
                chunk = await self.service.call(fh.read, FILE_CHUNK)
                if not chunk:
                    break
                self.write(chunk)
                await self.flush()
        self.finish()


class SchedulesHandler(ApiHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.answer(await self.service.call(lambda: self.service.clusters.schedules()))


class ScheduleActionHandler(ApiHandler):
    @tornado.web.authenticated
    async def post(self, name: str, action: str) -> None:
        self.answer(await self.service.call(lambda: self.service.clusters.schedule_action(name, action)))


def _one(args: dict[str, list[str]], name: str) -> str | None:
    values = args.get(name) or []
    if len(values) > 1:
        raise invalid(name, "was given more than once", "one value")
    return values[0] if values else None

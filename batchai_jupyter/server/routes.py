"""The route table, relative to <base_url>/batchai/api/v1 (docs/lab.md, REST API)."""
from __future__ import annotations

from typing import Any

from . import handlers as h
from .sockets import EventsHandler, LogFollowHandler

_ID = r"([^/:]+?)"
#: the `:` of `runs/{id}:cancel`, as clients send it (some escape it as %3A)
_COLON = r"(?::|%3[Aa])"

ROUTES: list[tuple[str, Any]] = [
    ("capabilities", h.CapabilitiesHandler),
    ("clusters", h.ClustersHandler),
    (rf"clusters/{_ID}{_COLON}resize", h.ResizeHandler),
    (rf"clusters/{_ID}/nodes", h.NodesHandler),
    ("experiments", h.ExperimentsHandler),
    ("tags", h.TagsHandler),
    ("runs", h.RunsHandler),
    (rf"runs/{_ID}{_COLON}(cancel|rerun)", h.RunActionHandler),
    (rf"runs/{_ID}", h.RunHandler),
    (rf"runs/{_ID}/children", h.ChildrenHandler),
    (rf"runs/{_ID}/events", h.RunEventsHandler),
    (rf"runs/{_ID}/logs", h.LogsHandler),
    (rf"runs/{_ID}/logs/(.+)/follow", LogFollowHandler),
    (rf"runs/{_ID}/logs/(.+)", h.LogHandler),
    (rf"runs/{_ID}/metrics", h.MetricsHandler),
    (rf"runs/{_ID}/metrics/(.+)", h.MetricHandler),
    (rf"runs/{_ID}/files/(.+)", h.FileHandler),
    ("schedules", h.SchedulesHandler),
    (rf"schedules/{_ID}{_COLON}(enable|disable|trigger)", h.ScheduleActionHandler),
    ("events", EventsHandler),
]

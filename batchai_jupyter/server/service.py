"""The service the handlers talk to: it owns the Workspace and runs every blocking call in a
thread pool, returning plain JSON-able dicts (docs/lab.md). Handlers only do HTTP.

GET /runs pages run on one reading thread of their own, so the history's `data_version` (which
changes whenever another connection commits) tells when the per-status counts it keeps must be
counted again: a page of a 100,000-run history costs one indexed query, not a count; and a page
asked again while nothing was committed is the text it was last time.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .. import __version__
from ..cluster import backend_names
from ..workspace import Workspace
from .clusters import ClusterService
from .errors import no_workspace
from .query import RunFilter, encode_cursor, run_json
from .runfiles import RunFilesService
from .runs import RunService
from .sparks import spark_lines

T = TypeVar("T")


class Service:
    """One per server: the workspace (or None), the thread pools and the parts of the API."""

    def __init__(self, workspace: Workspace | None, root_dir: str, workers: int = 4):
        self.workspace = workspace
        self.root_dir = Path(root_dir).expanduser().resolve()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="batchai-api")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="batchai-api-pages")
        self._counts: dict[tuple[Any, ...], tuple[int, dict[str, int]]] = {}
        self._counts_lock = threading.Lock()
        #: GET /runs texts by query, valid while history.db's data_version stays (reader thread only)
        self._pages: dict[tuple[Any, ...], tuple[int, str, str]] = {}
        self._submit_lock = threading.Lock()

    def ws(self) -> Workspace:
        if self.workspace is None:
            raise no_workspace()
        return self.workspace

    @property
    def runs(self) -> RunService:
        return RunService(self.ws(), self.root_dir, self._submit_lock)

    @property
    def files(self) -> RunFilesService:
        return RunFilesService(self.ws())

    @property
    def clusters(self) -> ClusterService:
        return ClusterService(self.ws())

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call in the pool; the event loop never waits on SQLite or a disk."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def page(self, filt: RunFilter) -> dict[str, Any]:
        """GET /runs (and /runs/{id}/children): one page, the counts, the next cursor."""
        ws = self.ws()
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._page, ws, filt)

    async def page_text(self, filt: RunFilter) -> tuple[str, str]:
        """The page as JSON text and its ETag; the same query while nothing was committed
        (`data_version`) is answered from the last text, as a panel polling its page asks."""
        ws = self.ws()
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._page_text, ws, filt)

    def _page_text(self, ws: Workspace, filt: RunFilter) -> tuple[str, str]:
        version = ws.history.data_version()
        key = (filt, filt.after)
        hit = self._pages.get(key)
        if hit is not None and hit[0] == version:
            return hit[1], hit[2]
        text = json.dumps(self._page(ws, filt))
        etag = '"' + hashlib.sha1(text.encode()).hexdigest() + '"'
        if len(self._pages) > 256:
            self._pages.clear()
        self._pages[key] = (version, text, etag)
        return text, etag

    def _page(self, ws: Workspace, filt: RunFilter) -> dict[str, Any]:
        history = ws.history
        page = history.run_page(status=filt.status, limit=filt.limit + 1, after=filt.after,
                                ascending=filt.ascending, **filt.history_filters())
        more = len(page) > filt.limit
        page = page[:filt.limit]
        children = history.child_counts([row["id"] for row, _key in page]) if "children" in filt.fields else {}
        counts = self._cached_counts(ws, filt)
        total = sum(n for status, n in counts.items() if filt.status is None or status in filt.status)
        runs = [run_json(row, children.get(row["id"], 0), filt.fields) for row, _key in page]
        if filt.spark:  # opt-in: one metrics read for the page's rows
            sparks = spark_lines(history, [r["id"] for r in runs], filt.spark)
            for r in runs:
                r["spark"] = sparks.get(r["id"])
        return {"runs": runs,
                "counts": counts, "total": total,
                "next_cursor": encode_cursor(page[-1][1], filt.ascending) if more else None}

    def _cached_counts(self, ws: Workspace, filt: RunFilter) -> dict[str, int]:
        version = ws.history.data_version()
        key = filt.counts_key()
        with self._counts_lock:
            hit = self._counts.get(key)
        if hit is not None and hit[0] == version:
            return dict(hit[1])
        counts = ws.history.count_by_status(**filt.history_filters())
        with self._counts_lock:
            if len(self._counts) > 256:
                self._counts.clear()
            self._counts[key] = (version, counts)
        return dict(counts)

    def forget_counts(self) -> None:
        """After a write of this server's own page thread (none today): count again."""
        with self._counts_lock:
            self._counts.clear()

    def capabilities(self) -> dict[str, Any]:
        ws = self.workspace
        return {"version": __version__,
                "workspace": None if ws is None else {"name": ws.name, "path": str(ws.path)},
                "backends": list(backend_names()), "features": {"schedules": True, "events_ws": True,
                                                                "log_follow_ws": True}}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._reader.shutdown(wait=False, cancel_futures=True)

"""exp.get_runs(): the runs of a query, newest first, read from history.db a page at a time.

Azure ML's `get_runs()` is a generator; scripts call `next()` on it, loop over it or make a list.
A RunQuery does all three without reading the whole history: iteration pages with a keyset (each
page costs one indexed query however many runs exist), `len()` is a COUNT, `bool()` reads one row.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .run import Run
    from .workspace import Workspace

PAGE_SIZE = 100


class RunQuery:
    """Runs matching a filter, newest first; iterate, `next()`, `len()`, `in`, index or slice."""

    def __init__(self, workspace: Workspace, filters: Mapping[str, Any], limit: int | None = None,
                 page_size: int = PAGE_SIZE):
        self.workspace = workspace
        self.filters = dict(filters)
        self.limit = limit
        self.page_size = page_size
        self._cursor: Iterator[Run] | None = None

    def __iter__(self) -> Iterator[Run]:
        from .run import Run
        after: tuple[float, int] | None = None
        left = self.limit
        while left is None or left > 0:
            size = self.page_size if left is None else min(self.page_size, left)
            page = self.workspace.history.run_page(limit=size, after=after, **self.filters)
            for row, _key in page:
                yield Run(self.workspace, row["id"])
            if len(page) < size:
                return
            after = page[-1][1]
            if left is not None:
                left -= len(page)

    def __next__(self) -> Run:
        """Azure ML's generator use: `next(exp.get_runs())` is the newest run."""
        if self._cursor is None:
            self._cursor = iter(self)
        return next(self._cursor)

    def __len__(self) -> int:
        count = self.workspace.history.count_runs(**self.filters)
        return count if self.limit is None else min(count, self.limit)

    def __bool__(self) -> bool:
        return bool(self.workspace.history.run_page(limit=1, **self.filters))

    def __contains__(self, item: object) -> bool:
        return any(run == item for run in self)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, int) and index >= 0:
            for i, run in enumerate(self):
                if i == index:
                    return run
            raise IndexError("run index out of range")
        return list(self)[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, RunQuery)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compares by content, like a list

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.filters.items() if v not in (None, False))
        return f"RunQuery({shown}{', ' if shown else ''}{len(self)} runs)"


def run_filters(experiment: str | None, status: str | Sequence[str] | None,
                tags: Mapping[str, str | None] | None, include_children: bool) -> dict[str, Any]:
    """The keyword filters history.run_page()/count_runs() take, from get_runs()' arguments."""
    statuses = (status,) if isinstance(status, str) else (tuple(status) if status else None)
    return {"experiment": experiment, "status": statuses, "tags": tags, "top_level": not include_children}

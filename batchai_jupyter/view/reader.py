"""Incremental reads of one run from the workspace (history.db and runs/<id>/files).

The widget's background thread calls these; each read costs a query or a file read from an
offset, so polling several times a second stays cheap. Nothing here touches a node.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..history import TERMINAL_STATUSES
from .metrics import Point, Series, add_to_series, summarize_metrics

if TYPE_CHECKING:
    from ..history import RunHistory

#: The log pane keeps the tail of a file; the whole file stays in the run's files.
MAX_LOG_CHARS = 64_000


def is_log_file(name: str) -> bool:
    """stdout/stderr of each process and the files a job writes to ./logs."""
    base = name.rsplit("/", 1)[-1]
    if name.startswith("logs/"):
        return True
    return "/" not in name and base.startswith(("stdout", "stderr")) \
        and base.endswith(".txt")


def log_file_names(files_dir: Path) -> list[str]:
    if not files_dir.exists():
        return []
    names = [p.relative_to(files_dir).as_posix() for p in files_dir.rglob("*") if p.is_file()]
    names = [n for n in names if is_log_file(n)]
    # stdout first, then stderr, then ./logs: the order a user looks at them
    return sorted(names, key=lambda n: (0 if n.startswith("stdout") else 1 if n.startswith("stderr")
                                        else 2, n))


class LogTail:
    """The tail of one run file, read from the last offset (a shorter file is read again)."""

    def __init__(self, path: Path, max_chars: int = MAX_LOG_CHARS):
        self.path = path
        self.max_chars = max_chars
        self.offset = 0
        self.text = ""
        self._pending = b""

    def read(self) -> bool:
        """Append what was written since the last read; True when the text changed."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return False
        if size < self.offset:
            self.offset, self.text, self._pending = 0, "", b""
        if size == self.offset:
            return False
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(size - self.offset)
        self.offset += len(data)
        data = self._pending + data
        cut = data.rfind(b"\n") + 1  # keep a partial UTF-8 line for the next read
        if cut == 0 and len(data) < 65536:
            self._pending = data
            return False
        if cut == 0:
            cut = len(data)
        self._pending = data[cut:]
        self.text = (self.text + data[:cut].decode("utf-8", "replace"))[-self.max_chars:]
        return True

    def flush(self) -> bool:
        """At the end of a run: show a last line that has no newline."""
        if not self._pending:
            return False
        self.text = (self.text + self._pending.decode("utf-8", "replace"))[-self.max_chars:]
        self._pending = b""
        return True


class MetricsTail:
    """Metric rows of one run, read by sequence number; scalars become (step, value) series.

    Only one attempt is shown: a requeued run's new attempt replaces the series of the earlier
    one (whose metrics stay in the history) instead of zig-zagging over them."""

    def __init__(self, history: RunHistory, run_id: str, attempt: int = 0):
        self.history = history
        self.run_id = run_id
        self.attempt = attempt
        self.last_seq = 0
        self.series: Series = {}
        #: series key -> (metric name, rank or None): what the live chart groups by
        self.keys: dict[str, tuple[str, Any]] = {}
        #: counts the restarts (a newer attempt logged): a consumer of new_points starts over
        self.generation = 0
        self._other_rows: list[dict[str, Any]] = []

    def read(self) -> bool:
        rows = self.history.metrics_since(self.run_id, self.last_seq)
        if not rows:
            return False
        changed = False
        for r in rows:
            self.last_seq = r["seq"]
            attempt = int(r.get("attempt") or 0)
            if attempt < self.attempt:
                continue
            if attempt > self.attempt:  # a new attempt logs: start over
                self.attempt, self.series, self._other_rows = attempt, {}, []
                self.keys, self.generation = {}, self.generation + 1
            changed = True
            if add_to_series(self.series, r):
                rank = r.get("rank")
                key = r["name"] if rank is None else f"{r['name']} [rank {rank}]"
                self.keys.setdefault(key, (r["name"], rank))
            else:
                self._other_rows.append({"name": r["name"], "kind": r["kind"], "value": r["value"]})
        return changed

    def new_points(self, sent: dict[str, int]) -> list[tuple[str, Any, str, list[Point]]]:
        """(metric, rank, series key, points) added since `sent` (series key -> points already
        handed on, updated here): the live chart is sent each point once."""
        out = []
        for key, points in self.series.items():
            done = sent.get(key, 0)
            if len(points) > done:
                name, rank = self.keys.get(key, (key, None))
                out.append((name, rank, key, points[done:]))
                sent[key] = len(points)
        return out

    @property
    def others(self) -> dict[str, Any]:
        return summarize_metrics(self._other_rows)


def children_rows(history: RunHistory, run_id: str,
                  metric: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Child runs (oldest first) with the last value of `metric`, and the scalar metric names
    they log (`metric` None: the first of those names)."""
    rows = list(reversed(history.run_rows(parent_id=run_id)))
    if not rows:
        return [], []
    ids = [r["id"] for r in rows]
    names = history.metric_names(ids, kind="scalar")
    if metric is None and names:
        metric = names[0]
    last = history.last_metric_values(ids, metric, kind="scalar") if metric is not None else {}
    for r in rows:
        r["metric"] = last.get(r["id"])
    return rows, names


def sort_children(rows: list[dict[str, Any]], descending: bool) -> list[dict[str, Any]]:
    """By the chosen metric (runs without it last), then by run number."""
    with_value = [r for r in rows if isinstance(r.get("metric"), (int, float))]
    without = [r for r in rows if not isinstance(r.get("metric"), (int, float))]
    with_value.sort(key=lambda r: r["metric"], reverse=descending)
    return with_value + sorted(without, key=lambda r: r["number"])


def all_ended(history: RunHistory, run_id: str) -> bool:
    """The run and every child run are in a final state (the widget can stop polling)."""
    row = history.run_row(run_id)
    if row is None or row["status"] not in TERMINAL_STATUSES:
        return False
    return all(r["status"] in TERMINAL_STATUSES for r in history.run_rows(parent_id=run_id))

"""The sparkline of each run row of a GET /runs page (`spark=auto` or `spark=<metric>`).

One read of the metrics table for the whole page, not a request per row: the points of each
run's primary metric in its latest attempt that logged any, downsampled as the metrics route
does (first, last, and each bucket's min and max), to at most SPARK_POINTS points.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..history import RunHistory
from ..view.metrics import is_number
from .series import downsample

SPARK_POINTS = 30
AUTO = "auto"


def _latest_attempts(history: RunHistory, run_ids: Sequence[str]) -> dict[str, int]:
    """run id -> its latest attempt that logged a metric (one grouped read through the index)."""
    marks = ",".join("?" * len(run_ids))
    rows = history.query(f"SELECT run_id, MAX(attempt) AS attempt FROM metrics WHERE run_id IN ({marks}) "
                         "GROUP BY run_id", tuple(run_ids))
    return {r["run_id"]: r["attempt"] for r in rows}


def primary_metrics(history: RunHistory, run_ids: Sequence[str], metric: str,
                    attempts: dict[str, int] | None = None) -> dict[str, str]:
    """run id -> the metric its sparkline draws: `metric`, or with `auto` the first scalar
    metric the run logged (lowest sequence number) in its latest attempt."""
    attempts = _latest_attempts(history, run_ids) if attempts is None else attempts
    names: dict[str, str] = {}
    for run_id, attempt in attempts.items():
        if metric != AUTO:
            got = history.query("SELECT name FROM metrics WHERE run_id=? AND name=? AND attempt=? "
                                "AND kind='scalar' LIMIT 1", (run_id, metric, attempt))
        else:
            got = history.query("SELECT name FROM metrics WHERE run_id=? AND attempt=? AND kind='scalar' "
                                "ORDER BY seq LIMIT 1", (run_id, attempt))
        if got:
            names[run_id] = got[0]["name"]
    return names


def spark_lines(history: RunHistory, run_ids: Sequence[str], metric: str) -> dict[str, dict[str, Any]]:
    """run id -> `{metric, points: [[step, value], ...], count}` for the runs that logged the
    metric (the lowest rank's series when several ranks log it); runs without one are absent.
    A few indexed reads per run of the page (by run and metric name), none across runs."""
    if not run_ids:
        return {}
    attempts = _latest_attempts(history, run_ids)
    names = primary_metrics(history, run_ids, metric, attempts)
    rows = [r for run_id, name in names.items()
            for r in history.query("SELECT run_id, step, value, rank FROM metrics WHERE run_id=? AND name=? "
                                   "AND attempt=? AND kind='scalar' ORDER BY seq",
                                   (run_id, name, attempts[run_id]))]
    low_rank: dict[str, int | None] = {}
    for r in rows:
        rank, seen = r["rank"], low_rank.get(r["run_id"], r["rank"])
        low_rank[r["run_id"]] = rank if seen is None or (rank is not None and rank < seen) else seen
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r["rank"] != low_rank[r["run_id"]]:
            continue
        value = json.loads(r["value"])
        if not is_number(value):
            continue
        points = series.setdefault(r["run_id"], [])
        points.append((r["step"] if r["step"] is not None else len(points), value))
    return {run_id: {"metric": names[run_id], "points": [[s, v] for s, v in downsample(points, SPARK_POINTS)],
                     "count": len(points)}
            for run_id, points in series.items()}

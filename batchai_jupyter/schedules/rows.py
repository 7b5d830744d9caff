"""Rows of schedules and of their fires, as `%batchai_schedule` and `batchai schedule` show them."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .client import Schedule, ScheduleFire

SCHEDULE_COLUMNS = ("name", "state", "version", "when", "tz", "overlap", "catchup", "cluster", "experiment", "next")
FIRE_COLUMNS = ("scheduled_time", "kind", "outcome", "run_id", "version", "reason")


def schedule_rows(schedules: Iterable[Schedule]) -> list[dict[str, Any]]:
    rows = []
    for sched in schedules:
        d = sched.details()
        when = d["cron"] if d["cron"] is not None else f"every {d['every']:g} s"
        rows.append({"name": d["name"], "state": d["state"], "version": d["version"], "when": when, "tz": d["tz"],
                     "overlap": d["overlap"], "catchup": d["catchup"], "cluster": d["cluster"],
                     "experiment": d["experiment"], "next": d["next"][0] if d["next"] else ""})
    return rows


def fire_rows(fires: Iterable[ScheduleFire]) -> list[dict[str, Any]]:
    return [{"scheduled_time": f.scheduled_time.isoformat(), "kind": f.kind, "outcome": f.outcome,
             "run_id": f.run_id or "", "version": f.version, "reason": f.reason or ""} for f in fires]

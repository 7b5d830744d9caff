"""ScheduleOptions: when a schedule fires and what it does on overlap or after a gap.

Checked before anything is stored: a bad cron line, an unknown time zone, or a typo in overlap,
catchup or code is a SpecError naming the field and the valid choices. Standard library plus
croniter; the stored form is a plain JSON dict (`to_dict` / `from_dict`).
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from croniter import croniter

from ..errors import SpecError

OVERLAPS = ("skip", "queue", "cancel_previous", "allow")
CATCHUPS = ("none", "latest", "all")
CODE_MODES = ("snapshot", "live")
#: The shortest interval `every=` takes (seconds): the engine checks slots about 20 times a second.
MIN_EVERY_SECONDS = 1.0
#: Names that `update()` may change (anything else is a SpecError naming these).
UPDATABLE = ("spec", "cluster", "experiment", "cron", "tz", "every", "start_at", "end_at", "overlap",
             "catchup", "code", "tags")


@dataclass(frozen=True)
class ScheduleOptions:
    """When and how a schedule fires (docs/schedules.md); times are UTC epoch seconds."""

    cron: str | None = None
    tz: str = "UTC"
    every: float | None = None
    start_at: float | None = None
    end_at: float | None = None
    overlap: str = "skip"
    catchup: str = "latest"
    code: str = "snapshot"

    def validate(self) -> ScheduleOptions:
        """Raise SpecError naming the first bad field; return self."""
        if (self.cron is None) == (self.every is None):
            raise SpecError("cron", "give exactly one of cron= or every=",
                            ["cron='5 * * * *'", "every=timedelta(hours=1)"])
        if self.cron is not None and not (isinstance(self.cron, str) and len(self.cron.split()) == 5
                                          and croniter.is_valid(self.cron)):
            raise SpecError("cron", f"{self.cron!r} is not a cron line",
                            "five fields: minute hour day-of-month month day-of-week, e.g. '5 * * * *'")
        if self.every is not None and (isinstance(self.every, bool) or not isinstance(self.every, (int, float))
                                       or self.every < MIN_EVERY_SECONDS):
            raise SpecError("every", f"{self.every!r} is not an interval of at least {MIN_EVERY_SECONDS:g} s",
                            "a timedelta, e.g. timedelta(hours=1), or seconds")
        zone(self.tz)
        for name, choices in (("overlap", OVERLAPS), ("catchup", CATCHUPS), ("code", CODE_MODES)):
            if getattr(self, name) not in choices:
                raise SpecError(name, f"unknown value {getattr(self, name)!r}", choices)
        if self.start_at is not None and self.end_at is not None and self.end_at <= self.start_at:
            raise SpecError("end_at", "is not after start_at", "a time after start_at, or None")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleOptions:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def changed(self, **changes: Any) -> ScheduleOptions:
        """A copy with these options changed (cron= clears every= and the other way round)."""
        if changes.get("cron") is not None:
            changes.setdefault("every", None)
        if changes.get("every") is not None:
            changes.setdefault("cron", None)
        return replace(self, **changes)


def zone(name: object) -> zoneinfo.ZoneInfo:
    """The IANA time zone of that name (SpecError naming tz otherwise)."""
    if not isinstance(name, str) or not name:
        raise SpecError("tz", f"{name!r} is not a time zone name", "an IANA name, e.g. 'UTC' or 'Europe/Berlin'")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise SpecError("tz", f"unknown time zone {name!r}",
                        "an IANA name, e.g. 'UTC', 'Europe/Berlin', 'America/New_York'") from exc


def as_epoch(name: str, value: object) -> float | None:
    """A point in time as UTC epoch seconds: a datetime (naive = UTC), an ISO 8601 text or seconds."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise SpecError(name, f"{value!r} is not an ISO 8601 time", "e.g. '2026-01-31T08:00:00+01:00'") from exc
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise SpecError(name, f"{value!r} is not a point in time", "a datetime, an ISO 8601 text or epoch seconds")


def as_seconds(value: object) -> float | None:
    """every=: a timedelta or seconds (checked by validate())."""
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value  # type: ignore[return-value]  # validate() names anything else

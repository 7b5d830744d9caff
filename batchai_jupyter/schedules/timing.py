"""Fire times of a schedule: cron lines in an IANA time zone, or a fixed interval.

Cron lines are read in the schedule's local wall time (croniter over naive local times), then
placed on the UTC time line with these rules for daylight-saving changes:
- a local time that does not exist (the hour skipped in spring) fires once, at the first
  instant after the gap (several slots inside one gap become that one fire);
- a local time that happens twice (the hour repeated in autumn) fires once, at its first
  occurrence.
`every=` slots are absolute: start_at (or the creation time) plus whole intervals, whatever the
time zone. Pure functions over epoch seconds; `clock.py` says what "now" is.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator

from croniter import croniter

from .options import ScheduleOptions, zone

_UTC = dt.timezone.utc
#: Never enumerate more slots than this in one call (a schedule that fires every second and an
#: engine that was down for a week): the older ones are left to the caller's catch-up rule.
MAX_SLOTS = 10_000


def to_utc(local: dt.datetime, tz: dt.tzinfo) -> float:
    """Epoch seconds of a naive local wall time, with the gap and repeat rules above."""
    first = local.replace(tzinfo=tz, fold=0)
    epoch = first.timestamp()
    back = dt.datetime.fromtimestamp(epoch, tz).replace(tzinfo=None)
    if back == local:
        return epoch  # exists (the first occurrence when it is repeated)
    # in a gap: fold=0 reads it with the offset before the change; the gap starts somewhere in
    # the hour(s) before `epoch`: find the transition instant by bisection
    low = local.replace(tzinfo=tz, fold=1).timestamp()
    high = epoch
    offset_low = dt.datetime.fromtimestamp(low, tz).utcoffset()
    while high - low > 0.5:
        mid = (low + high) / 2
        if dt.datetime.fromtimestamp(mid, tz).utcoffset() == offset_low:
            low = mid
        else:
            high = mid
    return float(math.ceil(high))


def iter_slots(options: ScheduleOptions, after: float, anchor: float) -> Iterator[float]:
    """Fire times strictly after `after`, in order (bounded by start_at/end_at).

    `anchor`: where `every=` counts from when start_at is not given (the creation time)."""
    lower = after if options.start_at is None else max(after, options.start_at - 1e-6)
    if options.every is not None:
        base = options.start_at if options.start_at is not None else anchor
        k = max(0, math.floor((lower - base) / options.every) + 1)
        while True:
            slot = base + k * options.every
            if options.end_at is not None and slot > options.end_at:
                return
            if slot > lower:
                yield slot
            k += 1
    tz = zone(options.tz)
    start = dt.datetime.fromtimestamp(math.floor(lower), tz).replace(tzinfo=None)
    it = croniter(str(options.cron), start)
    last = lower
    while True:
        slot = to_utc(it.get_next(dt.datetime), tz)
        if options.end_at is not None and slot > options.end_at:
            return
        if slot > last:  # repeated local hours and gaps fold onto slots already given
            last = slot
            yield slot


def slots_between(options: ScheduleOptions, after: float, until: float, anchor: float,
                  limit: int = MAX_SLOTS) -> list[float]:
    """Fire times in (after, until], oldest first; at most `limit` (the newest ones)."""
    slots: list[float] = []
    for slot in iter_slots(options, after, anchor):
        if slot > until:
            break
        slots.append(slot)
        if len(slots) > limit:
            slots.pop(0)
    return slots


def next_slots(options: ScheduleOptions, after: float, anchor: float, count: int) -> list[float]:
    """The next `count` fire times after `after` (fewer when end_at comes first)."""
    out: list[float] = []
    for slot in iter_slots(options, after, anchor):
        out.append(slot)
        if len(out) >= count:
            break
    return out


def iso(epoch: float, tz_name: str = "UTC") -> str:
    """ISO 8601 with the zone's offset, e.g. 2026-03-29T03:00:00+02:00."""
    return dt.datetime.fromtimestamp(epoch, zone(tz_name)).isoformat()

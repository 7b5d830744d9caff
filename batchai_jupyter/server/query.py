"""GET /runs query parameters -> history filters, the opaque keyset cursor, and run rows as JSON.

Every bad value is an `invalid` error naming its parameter and the valid choices, so the panel
(or a curl user) can correct the request without reading our source.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..history import ACTIVE_STATUSES, TERMINAL_STATUSES, RunKey
from ..records import RunRow
from ..view.rows import duration_seconds
from .errors import invalid

STATUSES = (*ACTIVE_STATUSES, *TERMINAL_STATUSES)
ROW_FIELDS = ("id", "number", "experiment", "cluster", "parent_id", "status", "tags", "created", "started",
              "ended", "duration", "error", "children")
SORTS = ("-created", "created")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
Args = Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class RunFilter:
    """One GET /runs query, in the history's terms."""

    experiment: str | None = None
    status: tuple[str, ...] | None = None
    parent_id: str | None = None
    top_level: bool = True
    cluster: str | None = None
    tags: tuple[tuple[str, str | None], ...] = ()
    q: str | None = None
    ascending: bool = False
    fields: tuple[str, ...] = ROW_FIELDS
    limit: int = DEFAULT_LIMIT
    spark: str | None = None
    after: RunKey | None = field(default=None, compare=False)

    def history_filters(self) -> dict[str, Any]:
        """Keyword filters of RunHistory.run_page/count_by_status (no status: counts are per status)."""
        return {"experiment": self.experiment, "parent_id": self.parent_id, "cluster": self.cluster,
                "tags": dict(self.tags) or None, "top_level": self.top_level, "q": self.q}

    def counts_key(self) -> tuple[Any, ...]:
        return (self.experiment, self.parent_id, self.top_level, self.cluster, self.tags, self.q)


def _one(args: Args, name: str) -> str | None:
    values = args.get(name) or []
    if len(values) > 1:
        raise invalid(name, "was given more than once", "one value")
    return values[0] if values else None


def _many(args: Args, name: str) -> list[str]:
    """A repeatable parameter; each value may also be comma-separated."""
    return [part.strip() for value in args.get(name) or [] for part in value.split(",") if part.strip()]


def parse_limit(value: str | None, name: str = "limit", default: int = DEFAULT_LIMIT,
                maximum: int = MAX_LIMIT, minimum: int = 1) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid(name, f"must be an integer, got {value!r}", f"{minimum}..{maximum}") from None
    if not minimum <= number <= maximum:
        raise invalid(name, f"{number} is out of range", f"{minimum}..{maximum}")
    return number


def parse_run_filter(args: Args, parent_id: str | None = None) -> RunFilter:
    """The filter of GET /runs (or of GET /runs/{id}/children, whose parent is fixed)."""
    statuses = _many(args, "status")
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise invalid("status", f"unknown status {unknown[0]!r}", STATUSES)
    parent = _one(args, "parent") if parent_id is None else parent_id
    tags: list[tuple[str, str | None]] = []
    for tag in args.get("tag") or []:
        key, sep, value = tag.partition(":")
        if not key:
            raise invalid("tag", f"{tag!r} has no key", "key or key:value")
        tags.append((key, value if sep else None))
    sort = _one(args, "sort") or "-created"
    if sort not in SORTS:
        raise invalid("sort", f"unknown sort {sort!r}", SORTS)
    fields = tuple(_many(args, "fields")) or ROW_FIELDS
    bad = [f for f in fields if f not in ROW_FIELDS]
    if bad:
        raise invalid("fields", f"unknown field {bad[0]!r}", ROW_FIELDS)
    if "id" not in fields:
        fields = ("id", *fields)
    ascending = sort == "created"
    top_level = parent in (None, "", "none")
    spark = _one(args, "spark")
    if spark is not None and not spark.strip():
        raise invalid("spark", "is empty", "auto (each run's first scalar metric) or a metric name")
    return RunFilter(experiment=_one(args, "experiment") or None, status=tuple(statuses) or None,
                     parent_id=None if top_level else parent, top_level=top_level,
                     cluster=_one(args, "cluster") or None, tags=tuple(sorted(tags, key=lambda t: t[0])),
                     q=_one(args, "q") or None, ascending=ascending, fields=fields,
                     limit=parse_limit(_one(args, "limit")), spark=spark.strip() if spark else None,
                     after=decode_cursor(_one(args, "cursor"), ascending))


# -- the keyset cursor: the last row's (created, rowid), opaque to clients ---------------------------
def encode_cursor(key: RunKey, ascending: bool) -> str:
    text = json.dumps({"created": key[0], "rowid": key[1], "asc": ascending}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(value: str | None, ascending: bool) -> RunKey | None:
    if not value:
        return None
    problem = "is not a cursor this server gave (use next_cursor of the previous page)"
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        created, rowid = float(data["created"]), int(data["rowid"])
        same_order = bool(data.get("asc", False)) == ascending
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise invalid("cursor", problem, "the next_cursor of the previous page, or none") from None
    if not same_order:
        raise invalid("cursor", "was made for the other sort order", "the next_cursor of a page in this sort")
    return created, rowid


# -- rows ------------------------------------------------------------------------------------------
def run_json(row: RunRow, children: int = 0, fields: Sequence[str] = ROW_FIELDS) -> dict[str, Any]:
    """A run row as the panel shows it; times are seconds since the epoch."""
    error = row["error"]
    full: dict[str, Any] = {
        "id": row["id"], "number": row["number"], "experiment": row["experiment"], "cluster": row["cluster"],
        "parent_id": row["parent_id"], "status": row["status"], "tags": dict(row["tags"]),
        "created": row["created"], "started": row["started"], "ended": row["ended"],
        "duration": duration_seconds(row), "error": {"message": error.get("message", "")} if error else None,
        "children": children}
    return full if fields is ROW_FIELDS else {name: full[name] for name in fields}

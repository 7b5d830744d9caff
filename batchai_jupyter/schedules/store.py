"""ScheduleStore: the schedule tables of history.db and every query against them.

Three tables, made on first use (the history package's pattern: CREATE ... IF NOT EXISTS):
- schedules: one row per schedule, its current version, state and cursor (every slot at or
  before the cursor has been dealt with);
- schedule_versions: what each version runs (stored spec, snapshot, cluster, options);
- schedule_fires: one row per slot with its outcome, UNIQUE (schedule, version, slot, kind), so
  a slot is claimed once however many processes try: the row is inserted (outcome
  `submitting`, with the run id it will use) before the run, and updated after.
"""
from __future__ import annotations

import json
import sqlite3
import time
from typing import TYPE_CHECKING, Any, TypedDict

from ..errors import SpecError

if TYPE_CHECKING:
    from ..history import RunHistory

SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules(name TEXT PRIMARY KEY, version INTEGER NOT NULL,
    state TEXT NOT NULL, cursor REAL NOT NULL, anchor REAL NOT NULL, created REAL NOT NULL,
    updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS schedule_versions(schedule TEXT NOT NULL, version INTEGER NOT NULL,
    experiment TEXT NOT NULL, cluster TEXT NOT NULL, options TEXT NOT NULL, spec TEXT NOT NULL,
    snapshot TEXT, data_refs TEXT, tags TEXT NOT NULL DEFAULT '{}', snapshot_info TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY(schedule, version));
CREATE TABLE IF NOT EXISTS schedule_fires(id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule TEXT NOT NULL, version INTEGER NOT NULL, slot REAL NOT NULL, kind TEXT NOT NULL,
    outcome TEXT NOT NULL, reason TEXT, run_id TEXT, recorded REAL NOT NULL,
    UNIQUE(schedule, version, slot, kind));
CREATE INDEX IF NOT EXISTS schedule_fires_by_outcome ON schedule_fires(outcome);
"""
STATES = ("enabled", "paused", "ended")
#: outcomes of a slot that still need the engine (a run to insert, or a queued fire)
PENDING = ("submitting", "waiting")
ACTIVE_STATUSES = ("Queued", "Preparing", "Running", "Finalizing", "CancelRequested")


class ScheduleRow(TypedDict):
    name: str
    version: int
    state: str
    cursor: float
    anchor: float
    created: float
    updated: float


class VersionRow(TypedDict):
    """What one version of a schedule runs (the stored JobSpec form, its snapshot and target)."""

    schedule: str
    version: int
    experiment: str
    cluster: str
    options: dict[str, Any]
    spec: dict[str, Any]
    snapshot: str | None
    data_refs: dict[str, Any] | None
    tags: dict[str, str]
    #: {"props": snapshot sizes}; with code="live" also source_directory, max_bytes, max_files and
    #: extra_files (name -> base64), to snapshot the folder at each fire
    snapshot_info: dict[str, Any]
    created: float


class FireRow(TypedDict):
    """One slot of a schedule and what became of it."""

    id: int
    schedule: str
    version: int
    slot: float
    kind: str  # scheduled | catchup | manual
    outcome: str
    reason: str | None
    run_id: str | None
    recorded: float


class ScheduleStore:
    """Schedule rows of one workspace's history.db."""

    def __init__(self, history: RunHistory):
        self.history = history
        if not history.query("SELECT 1 FROM sqlite_master WHERE name='schedule_fires'"):
            with history.tx() as db:
                for statement in _statements():
                    db.execute(statement)

    # -- schedules ------------------------------------------------------------------------------
    def create(self, name: str, version: VersionRow, state: str, cursor: float, anchor: float) -> None:
        now = time.time()
        try:
            with self.history.tx() as db:
                db.execute("INSERT INTO schedules VALUES(?, ?, ?, ?, ?, ?, ?)",
                           (name, 1, state, cursor, anchor, now, now))
                _insert_version(db, dict(version, version=1))  # type: ignore[arg-type]
        except sqlite3.IntegrityError:
            raise SpecError("name", f"a schedule named {name!r} exists already",
                            "a new name, or ws.schedule(name).update(...)") from None

    def add_version(self, name: str, version: VersionRow, cursor: float | None = None,
                    anchor: float | None = None) -> int:
        """Store a new version and make it current; returns its number."""
        with self.history.tx() as db:
            row = db.execute("SELECT version FROM schedules WHERE name=?", (name,)).fetchone()
            if row is None:
                raise SpecError("name", f"no schedule named {name!r}", self.names())
            number = int(row["version"]) + 1
            _insert_version(db, dict(version, version=number))  # type: ignore[arg-type]
            db.execute("UPDATE schedules SET version=?, updated=?, cursor=coalesce(?, cursor), "
                       "anchor=coalesce(?, anchor) WHERE name=?", (number, time.time(), cursor, anchor, name))
        return number

    def row(self, name: str) -> ScheduleRow | None:
        rows = self.history.query("SELECT * FROM schedules WHERE name=?", (name,))
        return _schedule(rows[0]) if rows else None

    def rows(self) -> list[ScheduleRow]:
        return [_schedule(r) for r in self.history.query("SELECT * FROM schedules ORDER BY created")]

    def names(self) -> list[str]:
        return [r["name"] for r in self.rows()]

    def has_enabled(self) -> bool:
        return bool(self.history.query("SELECT 1 FROM schedules WHERE state='enabled' LIMIT 1"))

    def version(self, name: str, version: int) -> VersionRow | None:
        rows = self.history.query("SELECT * FROM schedule_versions WHERE schedule=? AND version=?",
                                  (name, version))
        return _version(rows[0]) if rows else None

    def set_state(self, name: str, state: str, cursor: float | None = None) -> None:
        with self.history.tx() as db:
            db.execute("UPDATE schedules SET state=?, updated=?, cursor=max(cursor, coalesce(?, cursor)) "
                       "WHERE name=?", (state, time.time(), cursor, name))

    def delete(self, name: str) -> list[int]:
        """Remove the schedule, its versions and its fires; returns the version numbers it had."""
        with self.history.tx() as db:
            versions = [int(r["version"]) for r in db.execute(
                "SELECT version FROM schedule_versions WHERE schedule=?", (name,))]
            for table, column in (("schedules", "name"), ("schedule_versions", "schedule"),
                                  ("schedule_fires", "schedule")):
                db.execute(f"DELETE FROM {table} WHERE {column}=?", (name,))
        return versions

    # -- fires ------------------------------------------------------------------------------------
    def claim(self, name: str, version: int, slot: float, kind: str, outcome: str,
              reason: str | None = None, run_id: str | None = None, advance: bool = True) -> bool:
        """Record a slot's outcome unless it has one; move the cursor past it. False: taken."""
        with self.history.tx() as db:
            cur = db.execute("INSERT OR IGNORE INTO schedule_fires(schedule, version, slot, kind, outcome, "
                             "reason, run_id, recorded) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                             (name, version, slot, kind, outcome, reason, run_id, time.time()))
            if advance:
                db.execute("UPDATE schedules SET cursor=max(cursor, ?) WHERE name=?", (slot, name))
            return cur.rowcount == 1

    def set_outcome(self, fire_id: int, outcome: str, reason: str | None = None,
                    run_id: str | None = None) -> None:
        with self.history.tx() as db:
            db.execute("UPDATE schedule_fires SET outcome=?, reason=?, run_id=coalesce(?, run_id), recorded=? "
                       "WHERE id=?", (outcome, reason, run_id, time.time(), fire_id))

    def fire(self, name: str, version: int, slot: float, kind: str) -> FireRow | None:
        rows = self.history.query("SELECT * FROM schedule_fires WHERE schedule=? AND version=? AND slot=? "
                                  "AND kind=?", (name, version, slot, kind))
        return _fire(rows[0]) if rows else None

    def fires(self, name: str, limit: int | None = None) -> list[FireRow]:
        """The schedule's slots, newest first."""
        sql = "SELECT * FROM schedule_fires WHERE schedule=? ORDER BY slot DESC, id DESC"
        args: tuple[Any, ...] = (name,)
        if limit:
            sql += " LIMIT ?"
            args = (name, int(limit))
        return [_fire(r) for r in self.history.query(sql, args)]

    def pending(self, name: str) -> list[FireRow]:
        """Fires that still need the engine, oldest first."""
        return [_fire(r) for r in self.history.query(
            f"SELECT * FROM schedule_fires WHERE schedule=? AND outcome IN ({','.join('?' * len(PENDING))}) "
            "ORDER BY slot, id", (name, *PENDING))]

    def active_runs(self, name: str) -> list[tuple[str, str]]:
        """(run id, status) of the schedule's runs that have not ended."""
        return [(r["id"], r["status"]) for r in self.history.query(
            f"SELECT id, status FROM runs WHERE status IN ({','.join('?' * len(ACTIVE_STATUSES))}) "
            "AND json_extract(properties, '$.schedule')=? ORDER BY created", (*ACTIVE_STATUSES, name))]


def _statements() -> list[str]:
    return [s.strip() for s in SCHEMA.split(";") if s.strip()]


def _insert_version(db: sqlite3.Connection, v: VersionRow) -> None:
    db.execute("INSERT INTO schedule_versions VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (v["schedule"], v["version"], v["experiment"], v["cluster"], json.dumps(v["options"]),
                json.dumps(v["spec"]), v["snapshot"], _dump(v["data_refs"]), json.dumps(v["tags"]),
                json.dumps(v["snapshot_info"]), v["created"]))


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _schedule(r: sqlite3.Row) -> ScheduleRow:
    return ScheduleRow(name=r["name"], version=r["version"], state=r["state"], cursor=r["cursor"],
                       anchor=r["anchor"], created=r["created"], updated=r["updated"])


def _version(r: sqlite3.Row) -> VersionRow:
    return VersionRow(schedule=r["schedule"], version=r["version"], experiment=r["experiment"],
                      cluster=r["cluster"], options=json.loads(r["options"]), spec=json.loads(r["spec"]),
                      snapshot=r["snapshot"], data_refs=_load(r["data_refs"]), tags=json.loads(r["tags"]),
                      snapshot_info=json.loads(r["snapshot_info"]), created=r["created"])


def _fire(r: sqlite3.Row) -> FireRow:
    return FireRow(id=r["id"], schedule=r["schedule"], version=r["version"], slot=r["slot"], kind=r["kind"],
                   outcome=r["outcome"], reason=r["reason"], run_id=r["run_id"], recorded=r["recorded"])

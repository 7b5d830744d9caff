"""RunHistory: runs and their events, on top of the registry and the metrics tables."""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..records import EventRow, NewRun, RunRow
from .database import _json
from .metrics import _Metrics
from .registry import _Registry
from .schema import TERMINAL_STATUSES, RunKey

#: how long a deleted run's id is kept for node upkeep: a node away longer keeps its folder
TOMBSTONE_SECONDS = 30 * 24 * 3600.0


class RunHistory(_Registry, _Metrics):
    """Typed access to history.db; safe to use from several threads and processes."""

    # -- runs ---------------------------------------------------------------------------------
    def insert_run(self, run_id: str, experiment: str, cluster: str | None, spec: dict[str, Any],
                   snapshot: str | None, tags: dict[str, str], priority: int,
                   parent_id: str | None = None, properties: dict[str, Any] | None = None,
                   status: str = "Queued") -> None:
        self.insert_runs([NewRun(id=run_id, experiment=experiment, cluster=cluster, spec=spec, snapshot=snapshot,
                                 tags=tags, priority=priority, parent_id=parent_id,
                                 properties=properties or {}, status=status)])

    def insert_runs(self, runs: Sequence[NewRun]) -> None:
        """Insert new runs in one transaction (all or none), numbered in order."""
        now = time.time()
        with self.tx() as db:
            for run in runs:
                experiment = run["experiment"]
                db.execute("INSERT OR IGNORE INTO experiments(name, created) VALUES(?, ?)", (experiment, now))
                # one primary-key update, however long the history; a deleted run's number is not reused
                number = db.execute("UPDATE experiments SET last_number=last_number+1 WHERE name=? "
                                    "RETURNING last_number", (experiment,)).fetchone()[0]
                db.execute("INSERT INTO runs(id, number, experiment, cluster, parent_id, status, priority, "
                           "spec, snapshot, tags, properties, created) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                           (run["id"], number, experiment, run["cluster"], run["parent_id"], run["status"],
                            run["priority"], json.dumps(run["spec"]), run["snapshot"], json.dumps(run["tags"]),
                            json.dumps(run["properties"]), now))
                db.execute("INSERT INTO events VALUES(?, ?, ?, ?)", (run["id"], now, run["status"], "submitted"))

    def run_row(self, run_id: str) -> RunRow | None:
        rows = self.query("SELECT * FROM runs WHERE id=?", (run_id,))
        return _run_dict(rows[0]) if rows else None

    def run_rows(self, experiment: str | None = None, status: Sequence[str] | None = None,
                 parent_id: str | None = None, cluster: str | None = None,
                 limit: int | None = None, *, tags: Mapping[str, str | None] | None = None,
                 top_level: bool = False) -> list[RunRow]:
        """Runs, newest first. `tags`: each key must be present, with that value unless None;
        `top_level`: only runs without a parent."""
        return [row for row, _key in self.run_page(experiment, status, parent_id, cluster, limit, tags=tags,
                                                   top_level=top_level)]

    def run_page(self, experiment: str | None = None, status: Sequence[str] | None = None,
                 parent_id: str | None = None, cluster: str | None = None,
                 limit: int | None = None, *, tags: Mapping[str, str | None] | None = None,
                 top_level: bool = False, after: RunKey | None = None, q: str | None = None,
                 ascending: bool = False) -> list[tuple[RunRow, RunKey]]:
        """One page of run_rows() with each row's key; `after`: the key of the previous page's
        last row (keyset pagination: each page costs the same, however long the history);
        `q`: a substring of the id or experiment; `ascending`: oldest first."""
        where, args = _run_filter(experiment, status, parent_id, cluster, tags, top_level, q)
        if after is not None:
            op = ">" if ascending else "<"
            where.append(f"(created {op} ? OR (created = ? AND rowid {op} ?))")
            args.extend((after[0], after[0], after[1]))
        sql = "SELECT rowid AS _key, * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created, rowid" if ascending else " ORDER BY created DESC, rowid DESC"
        if limit:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [(_run_dict(r), (r["created"], r["_key"])) for r in self.query(sql, tuple(args))]

    def count_runs(self, experiment: str | None = None, status: Sequence[str] | None = None,
                   parent_id: str | None = None, cluster: str | None = None, *,
                   tags: Mapping[str, str | None] | None = None, top_level: bool = False,
                   q: str | None = None) -> int:
        """How many runs run_rows() would return without a limit."""
        where, args = _run_filter(experiment, status, parent_id, cluster, tags, top_level, q)
        sql = "SELECT count(*) FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        return int(self.query(sql, tuple(args))[0][0])

    def count_by_status(self, experiment: str | None = None, parent_id: str | None = None,
                        cluster: str | None = None, *, tags: Mapping[str, str | None] | None = None,
                        top_level: bool = False, q: str | None = None) -> dict[str, int]:
        """status -> how many runs count_runs() would count (one GROUP BY, not one per status)."""
        where, args = _run_filter(experiment, None, parent_id, cluster, tags, top_level, q)
        sql = "SELECT status, count(*) AS n FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        return {str(r["status"]): int(r["n"]) for r in self.query(sql + " GROUP BY status", tuple(args))}

    def events_after(self, after_seq: int = 0, limit: int = 500) -> list[dict[str, Any]]:
        """Status changes of every run after sequence number `after_seq` (the events rowid),
        oldest first, with the run's experiment and parent (a rowid range: one indexed read)."""
        return [dict(r) for r in self.query(
            "SELECT events.rowid AS seq, events.run_id, events.ts, events.status, events.message, "
            "runs.experiment, runs.parent_id, runs.cluster FROM events LEFT JOIN runs ON runs.id=events.run_id "
            "WHERE events.rowid>? ORDER BY events.rowid LIMIT ?", (int(after_seq), int(limit)))]

    def child_counts(self, run_ids: Sequence[str]) -> dict[str, int]:
        """run id -> how many child runs it has (runs without children are absent)."""
        if not run_ids:
            return {}
        return {str(r["parent_id"]): int(r["n"]) for r in self.query(
            f"SELECT parent_id, count(*) AS n FROM runs WHERE parent_id IN ({','.join('?' * len(run_ids))}) "
            "GROUP BY parent_id", tuple(run_ids))}

    def data_version(self) -> int:
        """A number that changes when another connection (any thread or process) commits: a
        cheap "has anything changed" check for caches kept by one reading thread."""
        return int(self.query("PRAGMA data_version")[0][0])

    def last_event_seq(self) -> int:
        """The sequence number of the latest status change (0: none yet)."""
        return int(self.query("SELECT COALESCE(MAX(rowid), 0) FROM events")[0][0])

    def delete_run(self, run_id: str) -> str | None:
        """Remove a run's rows (run, events, metrics, tail offsets) if it has ended.

        Returns the status the run had (None: no such run); an active run is left as it is,
        and the caller sees its active status. The run's files are the caller's to remove.
        """
        with self.tx() as db:
            row = db.execute("SELECT status, cluster FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                return None
            if row["status"] in TERMINAL_STATUSES:
                db.execute("DELETE FROM runs WHERE id=?", (run_id,))
                for table in ("events", "metrics", "offsets"):
                    db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
                now = time.time()  # a tombstone for node upkeep (deleted_run_ids)
                db.execute("INSERT OR REPLACE INTO deleted_runs VALUES(?, ?, ?)", (run_id, row["cluster"], now))
                db.execute("DELETE FROM deleted_runs WHERE deleted<?", (now - TOMBSTONE_SECONDS,))
            return str(row["status"])

    def deleted_run_ids(self, cluster: str) -> set[str]:
        """The cluster's runs deleted in the last TOMBSTONE_SECONDS: their node folders may go."""
        return {str(r["id"]) for r in self.query("SELECT id FROM deleted_runs WHERE cluster=?", (cluster,))}

    def last_deleted(self, cluster: str) -> float | None:
        """When a run of the cluster was deleted last (node disk upkeep sweeps after it)."""
        rows = self.query("SELECT MAX(deleted) AS deleted FROM deleted_runs WHERE cluster=?", (cluster,))
        return float(rows[0]["deleted"]) if rows and rows[0]["deleted"] is not None else None

    def queued_order(self) -> list[tuple[str, str]]:
        """(id, cluster) of the queued runs in the order the queue takes them; no row is
        decoded (the engine asks every pass, and a fan-out queues hundreds)."""
        return [(str(r["id"]), str(r["cluster"] or "")) for r in self.query(
            "SELECT id, cluster FROM runs WHERE status='Queued' ORDER BY priority DESC, created, number")]

    def queued_runs(self) -> list[RunRow]:
        return [_run_dict(r) for r in self.query(
            "SELECT * FROM runs WHERE status='Queued' ORDER BY priority DESC, created, number")]

    def set_status(self, run_id: str, status: str, message: str | None = None,
                   **fields: Any) -> None:
        now = time.time()
        cols = {"status": status}
        if status == "Running":
            fields.setdefault("started", now)
        if status in TERMINAL_STATUSES:
            fields.setdefault("ended", now)
        for key, value in fields.items():
            cols[key] = json.dumps(value) if key in ("error", "nodes", "properties") else value
        with self.tx() as db:
            db.execute(f"UPDATE runs SET {', '.join(k + '=?' for k in cols)} WHERE id=?",
                       (*cols.values(), run_id))
            db.execute("INSERT INTO events VALUES(?, ?, ?, ?)", (run_id, now, status, message))

    def update_run(self, run_id: str, **fields: Any) -> None:
        cols = {k: (json.dumps(v) if k in ("error", "nodes", "properties", "tags") else v)
                for k, v in fields.items()}
        with self.tx() as db:
            db.execute(f"UPDATE runs SET {', '.join(k + '=?' for k in cols)} WHERE id=?",
                       (*cols.values(), run_id))

    def events(self, run_id: str) -> list[EventRow]:
        return [EventRow(ts=r["ts"], status=r["status"], message=r["message"])
                for r in self.query("SELECT ts, status, message FROM events WHERE run_id=? "
                                    "ORDER BY ts", (run_id,))]

    def run_status(self, run_id: str) -> str | None:
        """A run's status, or None when there is no such run."""
        rows = self.query("SELECT status FROM runs WHERE id=?", (run_id,))
        return str(rows[0]["status"]) if rows else None

    def last_ended(self, cluster: str) -> float | None:
        """When the cluster's latest run to end ended (node disk upkeep sweeps after it)."""
        rows = self.query("SELECT MAX(ended) AS ended FROM runs WHERE cluster=?", (cluster,))
        return float(rows[0]["ended"]) if rows and rows[0]["ended"] is not None else None



def _run_filter(experiment: str | None, status: Sequence[str] | None, parent_id: str | None,
                cluster: str | None, tags: Mapping[str, str | None] | None,
                top_level: bool, q: str | None = None) -> tuple[list[str], list[Any]]:
    """The WHERE terms (and their arguments) of a run query; each is served by an index."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("experiment", experiment), ("parent_id", parent_id), ("cluster", cluster)):
        if value is not None:
            where.append(f"{column}=?")
            args.append(value)
    if top_level:
        where.append("parent_id IS NULL")
    if status:
        where.append(f"status IN ({','.join('?' * len(status))})")
        args.extend(status)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(id LIKE ? ESCAPE '\\' OR experiment LIKE ? ESCAPE '\\')")
        args.extend((pattern, pattern))
    for key, value in (tags or {}).items():
        if value is None:
            where.append("EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE key=?)")
            args.append(str(key))
        else:
            where.append("EXISTS (SELECT 1 FROM json_each(runs.tags) WHERE key=? AND "
                         "CAST(value AS TEXT)=?)")
            args.extend((str(key), str(value)))
    return where, args


def _run_dict(row: sqlite3.Row) -> RunRow:
    return RunRow(id=row["id"], number=row["number"], experiment=row["experiment"], cluster=row["cluster"],
                  parent_id=row["parent_id"], status=row["status"], priority=row["priority"],
                  spec=_json(row["spec"], {}), snapshot=row["snapshot"], tags=_json(row["tags"], {}),
                  properties=_json(row["properties"], {}), error=_json(row["error"], None),
                  nodes=_json(row["nodes"], []), created=row["created"], started=row["started"],
                  ended=row["ended"], cancel_requested=bool(row["cancel_requested"]))

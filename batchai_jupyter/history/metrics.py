"""Metrics, the tail offsets written with them, and the intents clients leave for the engine."""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from ..records import IntentRow
from .database import _Database


class _Metrics(_Database):
    """Metrics, the tail offsets written with them, and intents."""

    # -- metrics --------------------------------------------------------------------------------
    def metric_rows(self, run_ids: list[str], name: str | None = None,
                    attempt: int | None = None) -> list[dict[str, Any]]:
        """Metric rows of the runs in order (of one attempt of theirs unless attempt=None)."""
        sql = f"SELECT * FROM metrics WHERE run_id IN ({','.join('?' * len(run_ids))})"
        args: list[Any] = list(run_ids)
        if name is not None:
            sql += " AND name=?"
            args.append(name)
        if attempt is not None:
            sql += " AND attempt=?"
            args.append(int(attempt))
        return [dict(r) | {"value": json.loads(r["value"])}
                for r in self.query(sql + " ORDER BY seq", tuple(args))]

    def metrics_since(self, run_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        """Metric rows of one run with a sequence number above `after_seq`, in order (tails)."""
        return [dict(r) | {"value": json.loads(r["value"])} for r in self.query(
            "SELECT * FROM metrics WHERE run_id=? AND seq>? ORDER BY seq", (run_id, after_seq))]

    def metric_names(self, run_ids: Sequence[str], kind: str | None = "scalar") -> list[str]:
        """The distinct metric names the runs logged (of one kind unless kind=None), sorted."""
        if not run_ids:
            return []
        sql = f"SELECT DISTINCT name FROM metrics WHERE run_id IN ({','.join('?' * len(run_ids))})"
        args: list[Any] = list(run_ids)
        if kind is not None:
            sql += " AND kind=?"
            args.append(kind)
        return [r["name"] for r in self.query(sql + " ORDER BY name", tuple(args))]

    def last_metric_values(self, run_ids: Sequence[str], name: str,
                           kind: str | None = "scalar") -> dict[str, Any]:
        """run id -> the last value it logged for metric `name` in its latest attempt that logged
        any (a requeued run's earlier attempts do not count); runs without one are absent."""
        if not run_ids:
            return {}
        sql = (f"SELECT run_id, value FROM metrics WHERE run_id IN ({','.join('?' * len(run_ids))}) "
               "AND name=? AND attempt=(SELECT MAX(m.attempt) FROM metrics m WHERE m.run_id=metrics.run_id)")
        args: list[Any] = [*run_ids, name]
        if kind is not None:
            sql += " AND kind=?"
            args.append(kind)
        last: dict[str, Any] = {}
        for r in self.query(sql + " ORDER BY seq", tuple(args)):
            last[r["run_id"]] = json.loads(r["value"])
        return last

    # -- tail offsets (written with the data they cover) ---------------------------------------
    def offsets(self, run_id: str) -> dict[tuple[str, str], int]:
        return {(r["node"], r["path"]): r["offset"]
                for r in self.query("SELECT * FROM offsets WHERE run_id=?", (run_id,))}

    def record_metrics(self, run_id: str, node: str, path: str, offset: int,
                       records: list[dict[str, Any]], attempt: int = 0) -> None:
        """Insert metric records and move the tail offset in one transaction: no dup, no loss.

        `attempt`: the attempt whose files were tailed (a requeue starts the next one and
        clears the offsets); a record's own `run_id` (a child run made in the job) wins."""
        with self.tx() as db:
            _insert_metrics(db, run_id, records, attempt)
            db.execute("INSERT INTO offsets VALUES(?, ?, ?, ?) ON CONFLICT(run_id, node, path) "
                       "DO UPDATE SET offset=excluded.offset", (run_id, node, path, offset))

    def add_metrics(self, run_id: str, records: list[dict[str, Any]]) -> None:
        """Insert metric records logged without a job (an interactive run of a notebook)."""
        with self.tx() as db:
            _insert_metrics(db, run_id, records, 0)

    # -- intents (clients ask, the engine acts) -----------------------------------------------
    def add_intent(self, kind: str, target: str, payload: dict[str, Any] | None = None) -> int:
        with self.tx() as db:
            cur = db.execute("INSERT INTO intents(kind, target, payload, created) VALUES(?, ?, ?, ?)",
                             (kind, target, json.dumps(payload or {}), time.time()))
            return int(cur.lastrowid or 0)

    def pending_intents(self) -> list[IntentRow]:
        return [IntentRow(id=r["id"], kind=r["kind"], target=r["target"], payload=json.loads(r["payload"]),
                          created=r["created"], done=r["done"])
                for r in self.query("SELECT * FROM intents WHERE done IS NULL ORDER BY id")]

    def finish_intent(self, intent_id: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE intents SET done=? WHERE id=?", (time.time(), intent_id))

    # -- engine-side queries
    def clear_offsets(self, run_id: str) -> None:
        """Forget a run's tail offsets (a requeued attempt tails its new files from the start)."""
        with self.tx() as db:
            db.execute("DELETE FROM offsets WHERE run_id=?", (run_id,))



def _insert_metrics(db: sqlite3.Connection, run_id: str, records: list[dict[str, Any]],
                    attempt: int) -> None:
    for rec in records:
        rank = rec.get("rank")
        db.execute("INSERT INTO metrics(run_id, name, kind, step, value, ts, attempt, rank) "
                   "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                   (rec.get("run_id") or run_id, rec["name"], rec.get("kind", "scalar"), rec.get("step"),
                    json.dumps(rec.get("value")), rec.get("ts", time.time()), attempt,
                    rank if isinstance(rank, int) and not isinstance(rank, bool) else None))

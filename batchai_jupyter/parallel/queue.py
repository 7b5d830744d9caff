"""The mini-batch queue every worker process of a parallel run shares: SQLite in the run's
shared temp folder (AZ_BATCHAI_SHARED_JOB_TEMP).

A worker leases one batch at a time and renews the lease while run() works; a lease that
stops being renewed (its worker died) expires and the batch goes back to the queue. A batch is
done only through `commit`, which succeeds for the lease holder alone, once. Standard library.
"""
from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

#: how long a lease lasts without renewal (a worker renews every 2 s while run() works)
LEASE_SECONDS = float(os.environ.get("BATCHAI_PARALLEL_LEASE_SECONDS", "15"))
SCHEMA = """
CREATE TABLE IF NOT EXISTS batches(id INTEGER PRIMARY KEY, items TEXT NOT NULL, state TEXT NOT NULL,
    owner TEXT, lease_until REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
    rows INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _retry_locked(step: Any, seconds: float = 60.0) -> None:
    """Run `step` until SQLite stops answering "database is locked" (or `seconds` pass)."""
    deadline = time.monotonic() + seconds
    pause = 0.01
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause + random.random() * pause)
            pause = min(pause * 2, 0.5)


class BatchQueue:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout=60000")
        _retry_locked(self._prepare)

    def _prepare(self) -> None:
        # every worker of every node opens the file at once when the run starts; switching a new
        # database to WAL answers "locked" without waiting on the busy handler, so it is retried
        if self.db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self.db.execute("PRAGMA journal_mode=WAL")
        # no fsync per lease and commit: WAL with synchronous=NORMAL loses no committed change
        # when a worker or its node's processes die (only an OS crash could, and then the batch
        # is leased again and its file rewritten under the same name: still no duplicate row)
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def fill(self, batches: list[list[Any]]) -> None:
        """Rank 0: the batches, once (a repeated fill after a restart changes nothing)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if not self.db.execute("SELECT 1 FROM meta WHERE key='ready'").fetchone():
                for i, items in enumerate(batches):
                    self.db.execute("INSERT INTO batches(id, items, state) VALUES(?, ?, 'pending')",
                                    (i, json.dumps(items)))
                self.db.execute("INSERT INTO meta VALUES('ready', ?)", (str(time.time()),))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def ready(self) -> bool:
        return self.db.execute("SELECT 1 FROM meta WHERE key='ready'").fetchone() is not None

    def lease(self, owner: str) -> tuple[int, list[Any]] | None:
        """The next pending batch (or one whose lease expired), leased to `owner`."""
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT id, items FROM batches WHERE state='pending' OR (state='leased' AND "
                                  "lease_until<?) ORDER BY id LIMIT 1", (now,)).fetchone()
            if row is not None:
                self.db.execute("UPDATE batches SET state='leased', owner=?, lease_until=? WHERE id=?",
                                (owner, now + LEASE_SECONDS, row["id"]))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return (int(row["id"]), json.loads(row["items"])) if row is not None else None

    def renew(self, batch: int, owner: str) -> None:
        self.db.execute("UPDATE batches SET lease_until=? WHERE id=? AND owner=? AND state='leased'",
                        (time.time() + LEASE_SECONDS, batch, owner))

    def commit(self, batch: int, owner: str, rows: int) -> bool:
        """Mark the batch done if `owner` still holds it; False: its lease was lost."""
        cur = self.db.execute("UPDATE batches SET state='done', rows=? WHERE id=? AND owner=? AND state='leased'",
                              (rows, batch, owner))
        return cur.rowcount == 1

    def fail(self, batch: int, owner: str, error: str, retries: int) -> None:
        """One failed try: back to the queue while tries are left, else failed for good."""
        self.db.execute("UPDATE batches SET attempts=attempts+1, error=?, owner=NULL, "
                        "state=CASE WHEN attempts+1>? THEN 'failed' ELSE 'pending' END "
                        "WHERE id=? AND owner=? AND state='leased'", (error, retries, batch, owner))

    def counts(self) -> dict[str, int]:
        out = {"pending": 0, "leased": 0, "done": 0, "failed": 0}
        for row in self.db.execute("SELECT state, count(*) AS n FROM batches GROUP BY state"):
            out[row["state"]] = int(row["n"])
        return out

    def failed_items(self) -> int:
        rows = self.db.execute("SELECT items FROM batches WHERE state='failed'")
        return sum(len(json.loads(r["items"])) for r in rows)

    def failed(self) -> list[dict[str, Any]]:
        return [{"batch": r["id"], "items": json.loads(r["items"]), "attempts": r["attempts"], "error": r["error"]}
                for r in self.db.execute("SELECT * FROM batches WHERE state='failed' ORDER BY id")]

    def done_ids(self) -> list[int]:
        return [int(r["id"]) for r in self.db.execute("SELECT id FROM batches WHERE state='done' ORDER BY id")]

    def set_worker(self, owner: str, record: dict[str, Any]) -> None:
        self.set_flag(f"worker:{owner}", json.dumps(record))

    def workers(self) -> dict[str, dict[str, Any]]:
        """Every worker's record (set_worker), by owner."""
        rows = self.db.execute("SELECT key, value FROM meta WHERE key LIKE 'worker:%' ORDER BY key")
        return {r["key"][len("worker:"):]: json.loads(r["value"]) for r in rows}

    def set_flag(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES(?, ?)", (key, value))

    def flag(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row["value"])

"""One connection per thread to history.db, transactions, and the migration of older files."""
from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import WorkspaceError
from .schema import ADDED_COLUMNS, SCHEMA


class _Database:
    """One connection per thread to history.db; the schema is made on first use."""

    def __init__(self, path: Path, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only  # a job reading its workspace: no schema, no WAL switch
        self._local = threading.local()
        if not read_only:
            self._conn().executescript(SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        """Bring a database made by an earlier version up to SCHEMA (columns added since)."""
        def missing(db: sqlite3.Connection) -> list[tuple[str, str, str, str | None]]:
            return [c for c in ADDED_COLUMNS
                    if c[1] not in {r["name"] for r in db.execute(f"PRAGMA table_info({c[0]})")}]

        if not missing(self._conn()):
            return
        with self.tx() as db:  # checked again: another process may have just added them
            for _table, _column, alter, backfill in missing(db):
                db.execute(alter)
                if backfill:
                    db.execute(backfill)

    # -- connection handling -------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                if self.read_only:
                    conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30,
                                           isolation_level=None)
                else:
                    conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
            except sqlite3.OperationalError as exc:  # e.g. WAL on a read-only folder
                raise WorkspaceError(f"cannot open the run history {self.path}: {exc} (make the "
                                     f"workspace folder writable, or free space on its disk)") from exc
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken eagerly, so two writers never deadlock on an upgrade."""
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # read-only, disk full, locked past the timeout
            raise self._unwritable(exc) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            _rollback(conn)
            raise self._unwritable(exc) from exc
        except BaseException:
            _rollback(conn)
            raise

    def _unwritable(self, exc: sqlite3.OperationalError) -> WorkspaceError:
        """The typed error of a write the database refused (a full disk, a read-only folder)."""
        return WorkspaceError(f"cannot write the run history {self.path}: {exc} (free space on "
                              f"its disk, or make the workspace folder writable)")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, args).fetchall()

    def own_changes(self) -> int:
        """Rows this thread's connection has changed so far: with data_version (other
        connections' commits), a cheap "did anything change" check for the engine's passes."""
        return int(self._conn().total_changes)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None



def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:  # the transaction is gone with the error that ended it
            pass


def _json(text: str | None, empty: Any) -> Any:
    return json.loads(text) if text else empty

"""RunHistory: the SQLite schema of a workspace and every query against it.

One file (history.db, WAL) is shared by clients (who insert runs and intents) and the engine
(the only writer of run state). Each thread gets its own connection, so a widget's background
thread never shares a cursor with the kernel. Every SQL statement of the project is in this file:
other modules call the named methods below.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .cluster_config import ClusterConfig
from .errors import WorkspaceError
from .records import DatastoreRow, EventRow, IntentRow, NewRun, NodeRow, RunRow
from .spec import PRIORITIES

SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments(name TEXT PRIMARY KEY, created REAL NOT NULL,
    last_number INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS clusters(name TEXT PRIMARY KEY, backend TEXT NOT NULL,
    config TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS datastores(name TEXT PRIMARY KEY, kind TEXT NOT NULL,
    config TEXT NOT NULL, is_default INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS nodes(cluster TEXT NOT NULL, id TEXT NOT NULL, address TEXT,
    state TEXT NOT NULL, run_id TEXT, error TEXT, gpus INTEGER NOT NULL DEFAULT 0,
    since REAL NOT NULL, info TEXT NOT NULL DEFAULT '{}', PRIMARY KEY(cluster, id));
CREATE TABLE IF NOT EXISTS runs(id TEXT PRIMARY KEY, number INTEGER NOT NULL,
    experiment TEXT NOT NULL, cluster TEXT, parent_id TEXT, status TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 1, spec TEXT NOT NULL, snapshot TEXT,
    tags TEXT NOT NULL DEFAULT '{}', properties TEXT NOT NULL DEFAULT '{}', error TEXT,
    nodes TEXT NOT NULL DEFAULT '[]', created REAL NOT NULL, started REAL, ended REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status);
DROP INDEX IF EXISTS runs_by_parent;
CREATE INDEX IF NOT EXISTS runs_of_parent ON runs(parent_id, created);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs(created);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs(experiment, created);
CREATE TABLE IF NOT EXISTS events(run_id TEXT NOT NULL, ts REAL NOT NULL, status TEXT NOT NULL,
    message TEXT);
CREATE INDEX IF NOT EXISTS events_by_run ON events(run_id, ts);
CREATE TABLE IF NOT EXISTS metrics(seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL,
    name TEXT NOT NULL, kind TEXT NOT NULL, step INTEGER, value TEXT NOT NULL, ts REAL NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0, rank INTEGER);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics(run_id, name);
CREATE TABLE IF NOT EXISTS offsets(run_id TEXT NOT NULL, node TEXT NOT NULL, path TEXT NOT NULL,
    offset INTEGER NOT NULL, PRIMARY KEY(run_id, node, path));
CREATE TABLE IF NOT EXISTS intents(id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    target TEXT NOT NULL, payload TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL, done REAL);
"""

#: where a run sits in the newest-first order: (created, rowid), the key of keyset pagination
RunKey = tuple[float, int]
#: columns added since the first schema: (table, column, how to add it, how to fill old rows)
ADDED_COLUMNS: tuple[tuple[str, str, str, str | None], ...] = (
    # the attempt a metric belongs to (a requeue starts a new one)
    ("metrics", "attempt", "ALTER TABLE metrics ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0", None),
    # the rank of the process that logged a metric, in a job of several (None: one process)
    ("metrics", "rank", "ALTER TABLE metrics ADD COLUMN rank INTEGER", None),
    # the last run number given in the experiment: numbers are never given twice, deletes or not
    ("experiments", "last_number", "ALTER TABLE experiments ADD COLUMN last_number INTEGER NOT NULL DEFAULT 0",
     ("UPDATE experiments SET last_number=(SELECT COALESCE(MAX(number), 0) FROM runs "
      "WHERE experiment=experiments.name)")),
)
ACTIVE_STATUSES = ("Queued", "Preparing", "Running", "Finalizing", "CancelRequested")
TERMINAL_STATUSES = ("Completed", "Failed", "Canceled")
__all__ = ["ACTIVE_STATUSES", "PRIORITIES", "SCHEMA", "TERMINAL_STATUSES", "RunHistory"]


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

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _Registry(_Database):
    """Experiments, clusters, datastores and nodes."""

    # -- registry: experiments, clusters, datastores --------------------------------------
    def ensure_experiment(self, name: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO experiments(name, created) VALUES(?, ?)", (name, time.time()))

    def experiments(self) -> list[str]:
        return [r["name"] for r in self.query("SELECT name FROM experiments ORDER BY created")]

    def has_experiment(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM experiments WHERE name=?", (name,)))

    def put_cluster(self, name: str, backend: str, config: dict[str, Any]) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO clusters VALUES(?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                       "backend=excluded.backend, config=excluded.config",
                       (name, backend, json.dumps(config), time.time()))

    def cluster_row(self, name: str) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM clusters WHERE name=?", (name,))
        return _cluster_dict(rows[0]) if rows else None

    def cluster_rows(self) -> list[dict[str, Any]]:
        return [_cluster_dict(r) for r in self.query("SELECT * FROM clusters ORDER BY created")]

    def put_cluster_config(self, config: ClusterConfig) -> None:
        """Store a cluster's settings (insert or replace), in the row shape cluster_row reads."""
        self.put_cluster(config.name, config.backend, config.stored_config())

    def cluster_config(self, name: str) -> ClusterConfig | None:
        row = self.cluster_row(name)
        return ClusterConfig.from_dict(row) if row is not None else None

    def cluster_configs(self, include_deleting: bool = False) -> list[ClusterConfig]:
        """Every cluster's settings, oldest first (those being deleted only when asked)."""
        configs = [ClusterConfig.from_dict(r) for r in self.cluster_rows()]
        return [c for c in configs if include_deleting or not c.deleting]

    def delete_cluster(self, name: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM clusters WHERE name=?", (name,))
            db.execute("DELETE FROM nodes WHERE cluster=?", (name,))

    def put_datastore(self, name: str, kind: str, config: dict[str, Any], default: bool = False) -> None:
        with self.tx() as db:
            if default:
                db.execute("UPDATE datastores SET is_default=0")
            db.execute("INSERT INTO datastores VALUES(?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                       "kind=excluded.kind, config=excluded.config",
                       (name, kind, json.dumps(config), int(default), time.time()))

    def datastore_rows(self) -> list[DatastoreRow]:
        return [DatastoreRow(name=r["name"], kind=r["kind"], config=json.loads(r["config"]),
                             is_default=bool(r["is_default"]))
                for r in self.query("SELECT * FROM datastores ORDER BY created")]

    def set_default_datastore(self, name: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE datastores SET is_default=(name=?)", (name,))

    # -- nodes ------------------------------------------------------------------------------
    def nodes(self, cluster: str) -> list[NodeRow]:
        return [_node_dict(r) for r in
                self.query("SELECT * FROM nodes WHERE cluster=? ORDER BY id", (cluster,))]

    def put_node(self, cluster: str, node_id: str, state: str, address: str | None = None,
                 run_id: str | None = None, error: str | None = None, gpus: int = 0,
                 info: dict[str, Any] | None = None) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO nodes VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(cluster, id) DO UPDATE SET "
                "address=coalesce(excluded.address, address), state=excluded.state, "
                "run_id=excluded.run_id, error=excluded.error, gpus=excluded.gpus, "
                "since=CASE WHEN state=excluded.state AND coalesce(run_id,'')=coalesce(excluded.run_id,'') "
                "THEN since ELSE excluded.since END, info=excluded.info",
                (cluster, node_id, address, state, run_id, error, gpus, time.time(),
                 json.dumps(info or {})))

    def delete_node(self, cluster: str, node_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM nodes WHERE cluster=? AND id=?", (cluster, node_id))


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
                 top_level: bool = False, after: RunKey | None = None) -> list[tuple[RunRow, RunKey]]:
        """One page of run_rows() with each row's key; `after`: the key of the previous page's
        last row (keyset pagination: each page costs the same, however long the history)."""
        where, args = _run_filter(experiment, status, parent_id, cluster, tags, top_level)
        if after is not None:
            where.append("(created < ? OR (created = ? AND rowid < ?))")
            args.extend((after[0], after[0], after[1]))
        sql = "SELECT rowid AS _key, * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created DESC, rowid DESC"
        if limit:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [(_run_dict(r), (r["created"], r["_key"])) for r in self.query(sql, tuple(args))]

    def count_runs(self, experiment: str | None = None, status: Sequence[str] | None = None,
                   parent_id: str | None = None, cluster: str | None = None, *,
                   tags: Mapping[str, str | None] | None = None, top_level: bool = False) -> int:
        """How many runs run_rows() would return without a limit."""
        where, args = _run_filter(experiment, status, parent_id, cluster, tags, top_level)
        sql = "SELECT count(*) FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        return int(self.query(sql, tuple(args))[0][0])

    def delete_run(self, run_id: str) -> str | None:
        """Remove a run's rows (run, events, metrics, tail offsets) if it has ended.

        Returns the status the run had (None: no such run); an active run is left as it is,
        and the caller sees its active status. The run's files are the caller's to remove.
        """
        with self.tx() as db:
            row = db.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                return None
            if row["status"] in TERMINAL_STATUSES:
                db.execute("DELETE FROM runs WHERE id=?", (run_id,))
                for table in ("events", "metrics", "offsets"):
                    db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
            return str(row["status"])

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


def _insert_metrics(db: sqlite3.Connection, run_id: str, records: list[dict[str, Any]],
                    attempt: int) -> None:
    for rec in records:
        rank = rec.get("rank")
        db.execute("INSERT INTO metrics(run_id, name, kind, step, value, ts, attempt, rank) "
                   "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                   (rec.get("run_id") or run_id, rec["name"], rec.get("kind", "scalar"), rec.get("step"),
                    json.dumps(rec.get("value")), rec.get("ts", time.time()), attempt,
                    rank if isinstance(rank, int) and not isinstance(rank, bool) else None))


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:  # the transaction is gone with the error that ended it
            pass


def _cluster_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {"name": row["name"], "backend": row["backend"], **json.loads(row["config"])}


def _node_dict(row: sqlite3.Row) -> NodeRow:
    return NodeRow(cluster=row["cluster"], id=row["id"], address=row["address"], state=row["state"],
                   run_id=row["run_id"], error=row["error"], gpus=row["gpus"], since=row["since"],
                   info=json.loads(row["info"] or "{}"))


def _json(text: str | None, empty: Any) -> Any:
    return json.loads(text) if text else empty


def _run_filter(experiment: str | None, status: Sequence[str] | None, parent_id: str | None,
                cluster: str | None, tags: Mapping[str, str | None] | None,
                top_level: bool) -> tuple[list[str], list[Any]]:
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

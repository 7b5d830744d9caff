"""history.db's tables, the columns added since the first version, and the run statuses."""
from __future__ import annotations

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
-- runs deleted from the history, so node upkeep removes the folders they left on nodes it does
-- not own (ssh, slurm); made by this CREATE in a database from before it, forgotten after a while
CREATE TABLE IF NOT EXISTS deleted_runs(id TEXT PRIMARY KEY, cluster TEXT, deleted REAL NOT NULL);
CREATE INDEX IF NOT EXISTS deleted_runs_by_cluster ON deleted_runs(cluster, deleted);
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

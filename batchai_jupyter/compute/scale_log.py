"""ScaleLog: when a pool cluster last grew or shrank, and how long it took (cluster.get_status()).

A node pool records each node it provisions (scale up: from the request to a usable node, or
the failure) and each it gives back (scale down). One small table of history.db, made on first
use (the history package's pattern), keeping the last events per cluster.
"""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..history import RunHistory

SCHEMA = """CREATE TABLE IF NOT EXISTS cluster_scale(id INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster TEXT NOT NULL, kind TEXT NOT NULL, node TEXT NOT NULL, started REAL NOT NULL,
    ended REAL NOT NULL, ok INTEGER NOT NULL)"""
#: events kept per cluster (older ones are removed as new ones come)
KEEP = 50


@dataclass(frozen=True)
class ScaleEvent:
    """One node added (kind "up") or given back ("down")."""

    kind: str
    node: str
    started: float
    ended: float
    ok: bool  # False: the node's setup failed (it is unusable)

    @property
    def duration_seconds(self) -> float:
        return self.ended - self.started


class ScaleLog:
    def __init__(self, history: RunHistory):
        self.history = history
        self._made = False

    def record(self, cluster: str, kind: str, node: str, started: float, ok: bool = True) -> None:
        with self.history.tx() as db:
            if not self._made:
                db.execute(SCHEMA)
                self._made = True
            db.execute("INSERT INTO cluster_scale(cluster, kind, node, started, ended, ok) VALUES(?, ?, ?, ?, ?, ?)",
                       (cluster, kind, node, started, time.time(), int(ok)))
            db.execute("DELETE FROM cluster_scale WHERE cluster=? AND id NOT IN (SELECT id FROM cluster_scale "
                       "WHERE cluster=? ORDER BY id DESC LIMIT ?)", (cluster, cluster, KEEP))

    def last(self, cluster: str, kind: str) -> ScaleEvent | None:
        """The cluster's latest event of this kind (None: it never scaled that way)."""
        try:
            rows = self.history.query("SELECT * FROM cluster_scale WHERE cluster=? AND kind=? ORDER BY id DESC "
                                      "LIMIT 1", (cluster, kind))
        except sqlite3.OperationalError:  # the table is made with the first event
            return None
        if not rows:
            return None
        r = rows[0]
        return ScaleEvent(r["kind"], r["node"], r["started"], r["ended"], bool(r["ok"]))

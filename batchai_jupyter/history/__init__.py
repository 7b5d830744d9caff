"""RunHistory: the SQLite schema of a workspace and every query against it.

One file (history.db, WAL) is shared by clients (who insert runs and intents) and the engine
(the only writer of run state). Each thread gets its own connection, so a widget's background
thread never shares a cursor with the kernel. Every SQL statement of the project is in this package:
other modules call the named methods of RunHistory.
"""
from __future__ import annotations

from ..spec import PRIORITIES
from .runs import RunHistory
from .schema import ACTIVE_STATUSES, ADDED_COLUMNS, SCHEMA, TERMINAL_STATUSES, RunKey

__all__ = ["ACTIVE_STATUSES", "ADDED_COLUMNS", "PRIORITIES", "SCHEMA", "TERMINAL_STATUSES", "RunHistory", "RunKey"]

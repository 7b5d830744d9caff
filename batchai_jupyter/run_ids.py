"""Run ids: `<experiment>_<unix time>_<8 hex digits>` for a submitted run, `<parent>_<8 hex digits>`
for a child a job or a notebook makes. Sortable by time, unique without a lock; standard library
only, so jobs (run_context) and the engine (schedules) make them the same way as clients."""
from __future__ import annotations

import secrets
import time


def new_run_id(experiment: str) -> str:
    """The id of a run submitted to an experiment."""
    return f"{experiment}_{int(time.time())}_{secrets.token_hex(4)}"


def child_run_id(parent_id: str) -> str:
    """The id of a child run made inside a job or an interactive run."""
    return f"{parent_id}_{secrets.token_hex(4)}"

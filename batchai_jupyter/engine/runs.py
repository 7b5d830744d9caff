"""Run-state changes several steps share: the table of active drivers, cancel, fail.

Only the engine writes run state; these are the few writes that do not belong to one RunDriver
(a run without a driver yet, or one canceled before it started).
"""
from __future__ import annotations

from typing import Any, TypeAlias

from ..compute.base import Compute
from ..history import ACTIVE_STATUSES
from .context import EngineContext
from .driver import RunDriver

Drivers: TypeAlias = dict[str, RunDriver]  # run id -> the driver of an active run


def cancel_run(ctx: EngineContext, drivers: Drivers, run_id: str) -> None:
    """A queued run ends Canceled at once; a started one is asked to stop on its nodes."""
    row = ctx.history.run_row(run_id)
    if row is None or row["status"] not in ACTIVE_STATUSES:
        return
    if row["status"] == "Queued":
        ctx.history.set_status(run_id, "Canceled", "canceled before it started",
                               cancel_requested=1, error={"message": "canceled"})
        ctx.secrets.delete("runs", run_id)
        return
    ctx.history.set_status(run_id, "CancelRequested", None, cancel_requested=1)
    driver = drivers.get(run_id)
    if driver is not None:
        driver.signal_cancel("canceled")


def fail_run(ctx: EngineContext, run_id: str, message: str, compute: Compute | None = None,
             **error: Any) -> None:
    """A run that has no driver fails: its nodes (if `compute` holds any) and secrets are freed."""
    ctx.log.warning("run %s: %s", run_id, message)
    if compute is not None:
        compute.release(run_id)
    ctx.secrets.delete("runs", run_id)
    ctx.history.set_status(run_id, "Failed", message, error={"message": message, **error})

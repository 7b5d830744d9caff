"""Reconcile: a starting engine picks up every run an earlier engine left active.

Runs are rebuilt from history.db and the nodes' files, each on its own: a run whose driver
cannot be rebuilt fails with the reason, and the others go on. A rebuilt run whose launch
raises keeps its driver, whose step then finds out (a node unreachable for long is lost; an
agent that never starts makes the run requeue).
"""
from __future__ import annotations

import logging

from ..compute.base import Compute, NodeInfo
from ..history import ACTIVE_STATUSES
from ..records import RunRow
from .context import EngineContext
from .driver import RunDriver
from .parent_rules import waits_for_children
from .runs import Drivers, fail_run

log = logging.getLogger("batchai_jupyter.engine")


def reconcile(ctx: EngineContext, drivers: Drivers) -> None:
    """Drivers for the active runs of history.db; nodes held by other runs go back to idle."""
    for run in ctx.history.run_rows(status=tuple(s for s in ACTIVE_STATUSES if s != "Queued")):
        compute: Compute | None = None
        if run["cluster"] is None or waits_for_children(run):  # no process of its own (a notebook's
            continue  # or a job's run, a parent waiting for its children: parents.py)
        try:
            compute = ctx.compute(run["cluster"] or "")
            if compute is None:
                ctx.history.set_status(run["id"], "Failed", "cluster deleted",
                                       error={"message": f"cluster {run['cluster']!r} no longer exists"})
                continue
            drivers[run["id"]] = _driver_for(ctx, run, compute)
        except Exception as exc:  # this run fails; the others go on
            log.exception("run %s: cannot reconcile", run["id"])
            drivers.pop(run["id"], None)
            try:
                fail_run(ctx, run["id"], f"cannot pick the run up after an engine restart: {exc}",
                         compute, exit_codes={})
            except Exception:
                log.exception("run %s: cannot record its failure", run["id"])
            continue
        try:
            drivers[run["id"]].launch()  # idempotent: starts only agents that never started
        except Exception:  # the driver's step decides (lost node, never started)
            log.exception("run %s: launch after restart failed", run["id"])
        log.info("reconciled run %s (%s)", run["id"], run["status"])
    active = set(drivers)
    for row in ctx.history.cluster_rows():
        try:
            cluster = ctx.compute(row["name"])
            if cluster is not None:
                cluster.reclaim_nodes(active)
        except Exception:
            log.exception("cluster %s: cannot reclaim nodes", row["name"])


def _driver_for(ctx: EngineContext, run: RunRow, compute: Compute) -> RunDriver:
    by_id = {n.id: n for n in compute.nodes()}
    nodes = [by_id.get(n["id"]) or NodeInfo(id=n["id"], address=n.get("address"), state="running",
                                            info=n.get("info", {})) for n in run["nodes"]]
    return RunDriver(ctx, run, compute, nodes)

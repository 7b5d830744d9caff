"""Node disk upkeep: ended runs' folders leave the nodes, caches stay bounded, figures are noted.

A run's folder on a node goes once the run is final (the driver collected its outputs, logs,
metrics and stdout before it marked the run so), unless the run asked to keep it
(`JobSpec(keep_node_files=True)`) or it is one of the cluster's latest `keep_failed_runs` failed
runs (its current attempt), or the run was deleted (`run.delete()`: history keeps its id a while,
so nodes the cluster does not own alone, ssh and slurm ones, lose its folder too). Each cluster
is swept when one of its runs ended or was deleted, when the engine starts (so what an earlier
engine or a restarted node left is cleaned) and every SWEEP_SECONDS;
a sweep also bounds each node's cache (node/cache.py) and writes each node's cache and
run-folder bytes into its row (`info["disk"]`), which `cluster.get_status()` reports.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

from ..compute.base import Compute, DiskTarget
from ..history import ACTIVE_STATUSES, TERMINAL_STATUSES
from ..node.cache import DiskReport, DiskRequest
from ..node.paths import parse_run_key, run_key
from ..records import RunRow
from .context import EngineContext

log = logging.getLogger("batchai_jupyter.engine")
SWEEP_SECONDS = float(os.environ.get("BATCHAI_NODE_DISK_SWEEP_SECONDS", "60"))


class NodeDisk:
    """When each cluster was swept last, and the sweep itself."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}    # cluster -> when its next periodic sweep is due
        self._swept: dict[str, float] = {}  # cluster -> when its last sweep started

    def upkeep(self, ctx: EngineContext) -> None:
        """Sweep each cluster that is due: a run of it ended since its last sweep, or the period
        is over (the first look at a cluster, after an engine start, is a sweep too)."""
        now = time.time()
        for row in ctx.history.cluster_rows():
            name = row["name"]
            if row.get("deleting"):
                continue
            ended = max(ctx.history.last_ended(name) or 0.0, ctx.history.last_deleted(name) or 0.0)
            ran_since = ended > 0 and ended >= self._swept.get(name, 0.0)
            if not ran_since and now < self._due.get(name, 0.0):
                continue
            compute = ctx.compute(name)
            if compute is None:
                continue
            self._swept[name], self._due[name] = now, now + SWEEP_SECONDS
            try:
                sweep(ctx, compute)
            except Exception:  # one cluster's trouble must not stop the others
                log.exception("cluster %s: node disk upkeep failed", name)


def sweep(ctx: EngineContext, compute: Compute) -> list[str]:
    """One cluster: remove ended runs' folders, bound caches, note figures; returns what went."""
    active = ctx.history.run_rows(status=ACTIVE_STATUSES)  # the workspace's, any cluster
    protect = [run_key(r["id"], int(r["properties"].get("attempt", 0))) for r in active]
    active_ids = {r["id"] for r in active}
    deleted = ctx.history.deleted_run_ids(compute.name)
    settings = compute.settings
    keep = settings.keep_failed_runs
    kept_failed = {r["id"] for r in ctx.history.run_rows(status=("Failed",), cluster=compute.name,
                                                         limit=keep)} if keep > 0 else set()
    removed: list[str] = []
    for target in compute.disk_targets():
        request: DiskRequest = {"roots": target.roots, "remove": [], "protect": protect,
                                "objects_dir": target.objects_dir, "shared_dir": compute.shared_dir(),
                                "cache_limit": settings.node_cache_bytes}
        try:
            report = compute.node_disk(target, request)
            evicted = report["evicted_objects"]
            keys = sorted({k for usage in report["roots"].values() for k in usage["runs"]})
            verdicts = {k: _verdict(ctx, compute, k, active_ids, kept_failed, deleted) for k in keys}
            remove = [k for k, v in verdicts.items() if v == "remove"]
            close = [k for k, v in verdicts.items() if v == "close"]
            if remove or close:
                report = compute.node_disk(target, {**request, "remove": remove, "close": close})
                evicted += report["evicted_objects"]
        except (OSError, ValueError, KeyError, ConnectionError) as exc:
            log.warning("cluster %s: node %s: disk upkeep: %s", compute.name, target.node.id, exc)
            continue
        removed += report["removed"]
        if evicted:  # what the engine remembers of the cache is stale now
            compute.forget_objects(target.node)
            for node in target.nodes:
                compute.forget_objects(node)
        _note(compute, target, report)
    if removed:
        log.info("cluster %s: removed %d ended run folder(s) from its nodes", compute.name, len(removed))
    return removed


def _verdict(ctx: EngineContext, compute: Compute, key: str, active_ids: set[str],
             kept_failed: set[str], deleted: set[str]) -> str:
    """What becomes of a run folder: "remove", "close" (an ended run's kept folder) or "keep"."""
    run_id, attempt = parse_run_key(key)
    if run_id in active_ids:
        return "keep"  # every attempt's folder stays while the run is active
    row: RunRow | None = ctx.history.run_row(run_id)
    if row is None:  # a run deleted here, or (on a node root not ours alone) another workspace's
        return "remove" if compute.owns_node_roots or run_id in deleted else "keep"
    if row["status"] not in TERMINAL_STATUSES:
        return "keep"
    current = int(row["properties"].get("attempt", 0))
    if (row["spec"] or {}).get("keep_node_files") or (
            row["status"] == "Failed" and attempt == current and run_id in kept_failed):
        return "close"
    return "remove"


def _note(compute: Compute, target: DiskTarget, report: DiskReport) -> None:
    """Each node's cache bytes (its trees, plus the object cache it reads) and run-folder bytes."""
    for node in target.nodes:
        usage = report["roots"].get(compute.node_root(node))
        if usage is None:
            continue
        disk: dict[str, Any] = {"cache_bytes": report["objects_bytes"] + sum(usage["trees"].values()),
                                "run_bytes": sum(usage["runs"].values()),
                                "run_folders": len(usage["runs"]), "at": time.time()}
        node.info = {**node.info, "disk": disk}
        compute.set_node_state(node, node.state, node.run_id)

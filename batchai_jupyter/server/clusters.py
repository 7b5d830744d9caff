"""Clusters, their nodes and schedules, as JSON dicts (blocking: the Service's pool runs them)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..cluster import Cluster
from ..compute.base import NODE_STATES, NodeInfo
from ..schedules.client import Schedule
from ..workspace import Workspace
from .errors import invalid, not_found
from .query import run_json

SCHEDULE_ACTIONS = ("enable", "disable", "trigger")
RESIZE_FIELDS = ("target_node_count", "min_nodes", "max_nodes")


def node_json(node: NodeInfo) -> dict[str, Any]:
    return {"id": node.id, "state": node.state, "host": node.address, "gpus": node.gpus, "run_id": node.run_id,
            "reason": node.error}


def cluster_json(cluster: Cluster) -> dict[str, Any]:
    status = cluster.get_status()
    nodes = cluster.nodes()
    counts = {state: status.node_state_counts.get(state, 0) for state in NODE_STATES}
    return {"name": cluster.name, "backend": cluster.backend, "min_nodes": cluster.min_nodes,
            "max_nodes": cluster.max_nodes, "gpus_per_node": cluster.gpus_per_node, "nodes": counts,
            "gpus": {"free": sum(n.gpus for n in nodes if n.state == "idle"), "total": sum(n.gpus for n in nodes)},
            "queued": status.queued_runs, "running": status.running_runs,
            "allocation_state": status.allocation_state, "errors": status.errors}


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    details = schedule.details()
    fires = schedule.fires(1)
    last = fires[0] if fires else None
    return {**details, "last": None if last is None else {
        "scheduled_time": last.scheduled_time.isoformat(), "kind": last.kind, "outcome": last.outcome,
        "reason": last.reason, "run_id": last.run_id}}


class ClusterService:
    """Cluster and schedule routes of one workspace (made per request)."""

    def __init__(self, workspace: Workspace):
        self.ws = workspace

    def clusters(self) -> dict[str, Any]:
        return {"clusters": [cluster_json(c) for c in self.ws.clusters()]}

    def nodes(self, name: str) -> dict[str, Any]:
        return {"nodes": [node_json(n) for n in self.ws.cluster(name).nodes()]}

    def resize(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """`{target_node_count}` (a fixed size, as cluster.resize) or `{min_nodes, max_nodes}`
        (autoscale bounds, as cluster.update; either may be left out to keep it)."""
        cluster = self.ws.cluster(name)
        unknown = [k for k in body if k not in RESIZE_FIELDS]
        if unknown:
            raise invalid(unknown[0], "is not a resize setting", RESIZE_FIELDS)
        if "target_node_count" in body:
            if "min_nodes" in body or "max_nodes" in body:
                raise invalid("target_node_count", "cannot be given with min_nodes/max_nodes",
                              "target_node_count alone, or min_nodes and/or max_nodes")
            cluster.resize(body["target_node_count"])
        elif "min_nodes" in body or "max_nodes" in body:
            cluster.update(min_nodes=body.get("min_nodes"), max_nodes=body.get("max_nodes"))
        else:
            raise invalid("target_node_count", "is missing (or give min_nodes/max_nodes)", "an integer >= 0")
        return cluster_json(cluster)

    def schedules(self) -> dict[str, Any]:
        return {"schedules": [schedule_json(s) for s in self.ws.schedules()]}

    def schedule_action(self, name: str, action: str) -> dict[str, Any]:
        known = [s.name for s in self.ws.schedules()]
        if name not in known:
            raise not_found(f"no schedule named {name!r}", f"known schedules: {', '.join(known) or 'none'}")
        schedule = self.ws.schedule(name)
        if action == "enable":
            schedule.resume()
        elif action == "disable":
            schedule.pause()
        elif action == "trigger":
            run = schedule.trigger()
            row = self.ws.history.run_row(run.id)
            return {**schedule_json(schedule), "run": None if row is None else run_json(row)}
        else:
            raise invalid("action", f"unknown action {action!r}", SCHEDULE_ACTIONS)
        return schedule_json(schedule)

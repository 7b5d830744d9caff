"""The embedded default backend: nodes are folders on this machine.

Nodes share the workspace's snapshot store as their object cache (a shared root), so a
re-submit sends nothing; the agent still copies files into each run's own working folder.
A node that became unusable (its agent was killed, its folder deleted) is reclaimed by the
pool's upkeep: what its unfinished runs recorded is killed, its folder made anew, and it is idle.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from ...errors import ClusterError
from ...history import ACTIVE_STATUSES, RunHistory
from ...layout import WorkspacePaths
from ...node.cache import DiskReport, DiskRequest, upkeep
from ...node.manifest import JobUser
from ...node.paths import RunPaths, run_key
from ...node.tree import remove_tree
from ...snapshot import SnapshotStore
from ..base import DiskTarget, NodeInfo, NodePool
from ..transport import LocalTransport, Transport
from .accounts import (
    ISOLATED_ROOT,
    account_name,
    check_run_as,
    check_runs_python,
    ensure_account,
    isolated_root,
    make_traversable,
)
from .starter import AgentStarter, is_agent_of

log = logging.getLogger("batchai_jupyter.engine")


class LocalCompute(NodePool):
    backend = "local"
    owns_node_roots = True

    def __init__(self, config: dict[str, Any], workspace_path: Path, history: RunHistory):
        super().__init__(config, workspace_path, history)
        self._transport = LocalTransport()
        #: the account jobs run as (accounts.py); its node folders are then outside the workspace
        self.account = account_name(self.config, self.name)
        self._job_user: JobUser | None = None
        self.run_as_fallback: str | None = None  # why run_as="auto" runs jobs as the engine's user
        self.root = isolated_root(self.workspace_path, self.name) if self.account else \
            WorkspacePaths.of(self.workspace_path).cluster_dir(self.name)
        self._zygote = AgentStarter(self.root)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        check_run_as(config.get("run_as"))
        return config

    def job_user(self) -> JobUser | None:
        """The unprivileged account the cluster's jobs run as (made on first use); None: ours.

        run_as="auto" falls back to the engine's user when the account cannot run the node's
        Python (a venv under /root): the nodes say so (`run_as` in their info); a named account
        that cannot makes the nodes unusable with the reason instead."""
        if self.account is None or self.run_as_fallback is not None:
            return None
        if self._job_user is None:
            auto = self.config.get("run_as") in (None, "auto")
            user = ensure_account(self.account, create=auto)
            try:
                check_runs_python(user, self.python())
            except ClusterError as exc:
                if not auto:
                    raise
                self.run_as_fallback = f"the engine's user: {exc}"
                log.warning("cluster %s: jobs run as %s", self.name, self.run_as_fallback)
                return None
            self._job_user = user
        return self._job_user

    def _slots(self) -> list[str]:
        return [f"node-{i}" for i in range(self.settings.max_nodes)]

    def _provision(self, node_id: str) -> dict[str, Any]:
        path = self.root / "nodes" / node_id
        (path / "runs").mkdir(parents=True, exist_ok=True)
        if self.account is not None:  # the job's account reaches its run folder, lists nothing on the way
            make_traversable(path / "runs", ISOLATED_ROOT)
        user = self.job_user()
        index = int(node_id.rsplit("-", 1)[1])
        gpus = self.gpus_per_node()
        gpu_ids = [str(i) for i in range(index * gpus, (index + 1) * gpus)]
        run_as = user["name"] if user else (self.run_as_fallback or "the engine's user")
        return {"address": "127.0.0.1", "gpus": gpus,
                "info": {"gpu_ids": gpu_ids, "path": str(path), "run_as": run_as}}

    def _deprovision(self, node: NodeInfo) -> None:
        remove_tree(str(self.root / "nodes" / node.id))  # an overlay a killed agent left is unmounted

    def _recover(self, node: NodeInfo) -> None:
        """An unusable node: kill what its unfinished runs recorded, clean its folder, idle again."""
        keep = {run_key(r["id"], int(r["properties"].get("attempt", 0)))
                for r in self.history.run_rows(status=ACTIVE_STATUSES)}
        runs = self.root / "nodes" / node.id / "runs"
        if any((runs / key).exists() for key in keep):
            return  # an active run still has files here; tried again later
        for run_dir in sorted(runs.iterdir()) if runs.is_dir() else []:
            _kill_leftovers(RunPaths.of_run_dir(str(run_dir)))
        self._deprovision(node)
        try:
            got = self._provision(node.id)
        except OSError as exc:
            node.error = f"cannot reclaim the node: {exc}"
            self.set_node_state(node, "unusable", None)
            return
        self.history.put_node(self.name, node.id, "idle", got["address"], None, None, got["gpus"], got["info"])

    def transport(self, node: NodeInfo) -> Transport:
        return self._transport

    def node_root(self, node: NodeInfo) -> str:
        return str(self.root / "nodes" / node.id)

    def objects_dir(self, node: NodeInfo) -> str:
        return str(WorkspacePaths.of(self.workspace_path).snapshot_objects)

    def ensure_objects(self, node: NodeInfo, digests: list[str], store: SnapshotStore) -> int:
        return 0  # the workspace store is this node's object cache

    def disk_targets(self) -> list[DiskTarget]:
        """Every node, unusable ones too (a folder here always answers); the workspace's store
        is not the nodes' to evict (ws.prune bounds it): their cache is their trees."""
        return [DiskTarget(n, [self.node_root(n)], None, [n]) for n in self.nodes()]

    def node_disk(self, target: DiskTarget, request: DiskRequest) -> DiskReport:
        return upkeep(request)  # the nodes are folders of this machine

    def free_port(self, node: NodeInfo) -> int:
        """The nodes are this machine: a port free here now."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def shared_dir(self) -> str | None:
        path = self.root / "shared"
        if self.account is not None and not path.is_dir():  # made once, reachable by the job's account
            make_traversable(path, ISOLATED_ROOT)
        os.makedirs(path, exist_ok=True)
        return str(path)

    def python(self, node: NodeInfo | None = None) -> str:
        return str(self.config.get("python") or sys.executable)

    def launch(self, node: NodeInfo, manifest_path: str, log_path: str) -> None:
        """Start the agent from the cluster's warm starter (node/zygote.py), which forks it
        detached; a fresh interpreter (the base launch) if the starter cannot be had."""
        if not self._zygote.request(self.python(node), manifest_path, log_path):
            super().launch(node, manifest_path, log_path)

    def close(self) -> None:
        self._zygote.close()
        super().close()


def _kill_leftovers(paths: RunPaths) -> None:
    """SIGKILL the process groups and the agent a run folder without status.json recorded."""
    if os.path.exists(paths.status):
        return
    try:
        with open(paths.pids, encoding="utf-8") as fh:
            groups = [int(p) for p in json.load(fh).values()]
    except (OSError, ValueError, AttributeError):
        groups = []
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    try:
        with open(paths.started, encoding="utf-8") as fh:
            agent = int(fh.read().strip())
        if is_agent_of(agent, paths.manifest):  # only if that pid is still the agent
            os.kill(agent, signal.SIGKILL)
    except (OSError, ValueError):
        pass

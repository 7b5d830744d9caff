"""The embedded default backend: nodes are folders on this machine.

Nodes share the workspace's snapshot store as their object cache (a shared root), so a
re-submit sends nothing; the agent still copies files into each run's own working folder.
"""
from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

from ...history import RunHistory
from ...layout import WorkspacePaths
from ...snapshot import SnapshotStore
from ..base import NodeInfo, NodePool
from ..transport import LocalTransport, Transport


class LocalCompute(NodePool):
    backend = "local"

    def __init__(self, config: dict[str, Any], workspace_path: Path, history: RunHistory):
        super().__init__(config, workspace_path, history)
        self._transport = LocalTransport()
        self.root = WorkspacePaths.of(self.workspace_path).cluster_dir(self.name)

    def _slots(self) -> list[str]:
        return [f"node-{i}" for i in range(int(self.config.get("max_nodes", 0)))]

    def _provision(self, node_id: str) -> dict[str, Any]:
        path = self.root / "nodes" / node_id
        (path / "runs").mkdir(parents=True, exist_ok=True)
        index = int(node_id.rsplit("-", 1)[1])
        gpus = self.gpus_per_node()
        gpu_ids = [str(i) for i in range(index * gpus, (index + 1) * gpus)]
        return {"address": "127.0.0.1", "gpus": gpus, "info": {"gpu_ids": gpu_ids, "path": str(path)}}

    def _deprovision(self, node: NodeInfo) -> None:
        shutil.rmtree(self.root / "nodes" / node.id, ignore_errors=True)

    def transport(self, node: NodeInfo) -> Transport:
        return self._transport

    def node_root(self, node: NodeInfo) -> str:
        return str(self.root / "nodes" / node.id)

    def objects_dir(self, node: NodeInfo) -> str:
        return str(WorkspacePaths.of(self.workspace_path).snapshot_objects)

    def ensure_objects(self, node: NodeInfo, digests: list[str], store: SnapshotStore) -> int:
        return 0  # the workspace store is this node's object cache

    def free_port(self, node: NodeInfo) -> int:
        """The nodes are this machine: a port free here now."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def shared_dir(self) -> str | None:
        path = self.root / "shared"
        os.makedirs(path, exist_ok=True)
        return str(path)

    def python(self, node: NodeInfo | None = None) -> str:
        return str(self.config.get("python") or sys.executable)

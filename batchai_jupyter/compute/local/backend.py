"""The embedded default backend: nodes are folders on this machine.

Nodes share the workspace's snapshot store as their object cache (a shared root), so a
re-submit sends nothing; the agent still copies files into each run's own working folder.
"""
from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from ..base import NodeInfo, NodePool
from ..transport import LocalTransport, Transport


class LocalCompute(NodePool):
    backend = "local"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._transport = LocalTransport()
        self.root = self.workspace_path / "clusters" / self.name

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
        return str(self.workspace_path / "snapshots" / "objects")

    def ensure_objects(self, node: NodeInfo, digests: list[str], store: Any) -> int:
        return 0  # the workspace store is this node's object cache

    def shared_dir(self) -> str | None:
        path = self.root / "shared"
        os.makedirs(path, exist_ok=True)
        return str(path)

    def python(self, node: NodeInfo) -> str:
        return self.config.get("python") or sys.executable

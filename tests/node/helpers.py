"""Run manifests for node tests, built the way the engine builds them."""
from __future__ import annotations

from typing import Any

from batchai_jupyter.node.manifest import ManifestNode, ManifestSnapshot, RunManifest
from batchai_jupyter.spec import JobSpec


def make_manifest(root: str = "/nodes", spec: dict[str, Any] | None = None, node_index: int = 0,
                  nodes: int = 2, gpus: int = 0, **fields: Any) -> RunManifest:
    """Node i lives at <root>/n<i> and 10.200.9.<i+2>; the job is `train.py --lr $SEED`."""
    base: dict[str, Any] = {"script": "train.py", "arguments": ["--lr", "$SEED"], "node_count": nodes}
    base.update(spec or {})
    node_list = [ManifestNode(id=f"n{i}", address=f"10.200.9.{i + 2}", gpus=gpus,
                              gpu_ids=[str(g) for g in range(gpus)], root=f"{root}/n{i}")
                 for i in range(nodes)]
    values: dict[str, Any] = {
        "run_id": "r1", "experiment": "exp", "run_key": "r1", "node_root": f"{root}/n{node_index}",
        "node_index": node_index, "nodes": node_list, "master_port": 29600,
        "objects_dir": f"{root}/n{node_index}/objects", "shared_dir": None, "python": "/py",
        "snapshot": ManifestSnapshot(), "spec": JobSpec(**base)}
    values.update(fields)
    return RunManifest(**values)

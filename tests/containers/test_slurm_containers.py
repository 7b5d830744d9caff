"""A 2-node job in an image on the slurm backend: the same agent, started inside the Slurm
allocation on each node, runs the node's share in that node's container (podman on the nodes)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from tests.compute.slurm_env import make_slurm_cluster

pytestmark = pytest.mark.timeout(240)


def test_two_node_slurm_job_in_containers(ws: bai.Workspace, tmp_path: Path, image: str,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    name = make_slurm_cluster(ws, tmp_path_factory, name="boxed")
    (tmp_path / "node.py").write_text(textwrap.dedent("""
        import os, bai_image_marker
        from batchai_jupyter import Run
        Run.get_context().log("node", int(os.environ["BATCHAI_NODE_INDEX"]))
        print("node", os.environ["BATCHAI_NODE_INDEX"], bai_image_marker.IMAGE_ONLY, flush=True)
    """))
    run = ws.experiment("slurm").submit(JobSpec(source_directory=tmp_path, script="node.py", node_count=2,
                                                image=image), cluster=name)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", details.get("error")
    assert list(run.stream(file="stdout-0-0.txt")) == ["node 0 bai-test-image"]
    assert list(run.stream(file="stdout-1-0.txt")) == ["node 1 bai-test-image"]
    assert sorted(run.get_metrics()["node"]) == [0, 1]

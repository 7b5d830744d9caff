"""Distributed jobs in containers, real podman: a 2-node PyTorch DDP job (torch from the host's
virtualenv bound read-only into the image: the test image has python3.11 but no torch) and a
2-node MPI job with the image's own OpenMPI and mpi4py, mpirun on host network and IPC."""
from __future__ import annotations

import importlib.util
import sysconfig
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec

pytestmark = pytest.mark.timeout(300)


def _two_nodes(ws: bai.Workspace) -> str:
    ws.create_cluster("pair", backend="local", max_nodes=2)
    return "pair"


def test_pytorch_ddp_on_two_nodes_in_containers(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip(reason="torch is not installed in this virtualenv (ci/setup-ssh.sh installs it)")
    site = sysconfig.get_paths()["purelib"]
    src = tmp_path / "ddp"
    src.mkdir()
    (src / "ddp.py").write_text(textwrap.dedent("""
        import os, sys
        import torch, torch.distributed as dist
        import bai_image_marker
        from batchai_jupyter import Run
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
        t = torch.tensor([float(rank + 1)])
        dist.all_reduce(t)
        Run.get_context().log("sum", float(t.item()))
        print(f"rank {rank}/{world} sum {t.item():.0f} {bai_image_marker.IMAGE_ONLY}", flush=True)
        dist.destroy_process_group()
    """))
    spec = JobSpec(source_directory=src, script="ddp.py", node_count=2, process_count_per_node=1,
                   distribution="pytorch", image=image,
                   container_options=["-v", f"{site}:{site}:ro"],
                   environment_variables={"PYTHONPATH": site, "GLOO_SOCKET_IFNAME": "lo"})
    run = ws.experiment("ddp").submit(spec, cluster=_two_nodes(ws))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", details.get("error")
    assert list(run.stream(file="stdout-0-0.txt")) == ["rank 0/2 sum 3 bai-test-image"]
    assert list(run.stream(file="stdout-1-0.txt")) == ["rank 1/2 sum 3 bai-test-image"]
    assert run.get_metrics()["sum"] == [3.0, 3.0]  # one value from each node


def test_mpi_on_two_nodes_in_containers(ws: bai.Workspace, tmp_path: Path, image: str) -> None:
    src = tmp_path / "mpi"
    src.mkdir()
    (src / "allreduce.py").write_text(textwrap.dedent("""
        import os
        from mpi4py import MPI
        import bai_image_marker
        comm = MPI.COMM_WORLD
        total = comm.allreduce(comm.Get_rank() + 1)
        node = os.environ["BATCHAI_NODE_INDEX"]
        print(f"rank {comm.Get_rank()}/{comm.Get_size()} node {node} total {total}", flush=True)
    """))
    spec = JobSpec(source_directory=src, script="allreduce.py", node_count=2, process_count_per_node=1,
                   distribution="mpi", image=image)
    run = ws.experiment("mpi").submit(spec, cluster=_two_nodes(ws))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", details.get("error")
    lines = sorted(line for line in run.stream() if line.startswith("rank"))
    assert lines == ["rank 0/2 node 0 total 3", "rank 1/2 node 1 total 3"]

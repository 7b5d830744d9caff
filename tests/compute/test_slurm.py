"""The slurm backend against a real slurmctld with two slurmd (see slurm_env.py).

What a user checks: a run goes through sbatch with the options they asked for, runs the same
agent on every node, reports Slurm's state, stops on cancel, fails with Slurm's reason when Slurm
kills it, and leaves no job or process behind. Status comes from one batched squeue with backoff.
"""
from __future__ import annotations

import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.errors import ClusterError, SpecError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_env import make_slurm_cluster, slurm_env  # noqa: E402

pytestmark = pytest.mark.timeout(180)


def wait_until(predicate, timeout: float = 60, interval: float = 0.1) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


def job_fields(env, job_id: str) -> dict[str, str]:
    """`scontrol show job` as a dict (what an admin would look at)."""
    out = env.run("scontrol", "show", "job", "-o", job_id)
    fields = {}
    for item in out.split():
        key, _, value = item.partition("=")
        fields[key] = value
    return fields


def slurm_job_id(run: bai.Run) -> str:
    assert wait_until(lambda: run.get_details()["properties"].get("slurm_job_id"), 60), \
        run.get_details()
    return str(run.get_details()["properties"]["slurm_job_id"])


@pytest.fixture
def slurm(tmp_path_factory):
    env = slurm_env(tmp_path_factory)
    yield env
    env.cancel_all()


@pytest.fixture
def dist_src(tmp_path: Path) -> Path:
    folder = tmp_path / "dsrc"
    folder.mkdir()
    (folder / "where.py").write_text(textwrap.dedent("""
        import os, sys, time
        from batchai_jupyter import Run
        run = Run.get_context()
        node = os.environ["BATCHAI_NODE_INDEX"]
        print("node", node, "slurm", os.environ.get("SLURMD_NODENAME"),
              "job", os.environ.get("SLURM_JOB_ID"), "gpus", os.environ.get("AZ_BATCHAI_NUM_GPUS"),
              "cuda", os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
        run.log("node_seen", int(node))
        os.makedirs("outputs", exist_ok=True)
        with open(f"outputs/node-{node}.txt", "w") as fh:
            fh.write(os.environ.get("SLURMD_NODENAME", "?"))
        time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
    """))
    return folder


def test_two_node_run_through_sbatch_and_srun(ws, slurm, tmp_path_factory, dist_src):
    name = make_slurm_cluster(ws, tmp_path_factory)
    spec = bai.JobSpec(source_directory=str(dist_src), script="where.py", node_count=2,
                       max_wall_clock_seconds=600)
    run = ws.experiment("slurm").submit(spec, cluster=name)
    run.wait_for_completion(show_output=False, timeout=120)
    details = run.get_details()
    assert details["status"] == "Completed", details
    job_id = str(details["properties"]["slurm_job_id"])
    fields = job_fields(slurm, job_id)
    assert fields["NumNodes"] == "2" and fields["Partition"] == "debug"
    assert fields["JobState"] == "COMPLETED", fields
    assert fields["TimeLimit"] == "00:12:00"  # 600 s + the agent's margin, in whole minutes
    names = sorted(run.get_file_names())
    assert "outputs/node-0.txt" in names
    lines = "".join(Path(ws.run_files_dir(run.id), "stdout-0-0.txt").read_text() +
                    Path(ws.run_files_dir(run.id), "stdout-1-0.txt").read_text())
    assert "slurm n1" in lines and "slurm n2" in lines and f"job {job_id}" in lines
    assert sorted(run.get_metrics()["node_seen"]) == [0, 1]
    assert ws.cluster(name).nodes() == []  # Slurm owns the nodes; none is held after the run

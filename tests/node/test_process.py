"""process.py: argv, environment and log names, as pure functions of their inputs."""
from __future__ import annotations

import pytest

from batchai_jupyter.errors import SpecError
from batchai_jupyter.node.process import (
    AUTOFLUSH_DIR,
    ProcessPlan,
    expand,
    gpu_split,
    job_argv,
    job_env,
    job_prep_plan,
    log_names,
    main_log_name,
)
from batchai_jupyter.spec import JobSpec

from .helpers import make_manifest


def test_job_env_is_the_node_env_plus_the_batch_ai_variables() -> None:
    m = make_manifest(spec={"environment_variables": {"SEED": 3, "PATH": "/opt/bin"}},
                      secrets={"TOKEN": "s3cret"}, node_index=1, gpus=2, python="/venv/bin/python",
                      shared_dir="/shared")
    env = job_env(m, {"HOME": "/root", "PATH": "/usr/bin", "BATCHAI_RUN_ID": "stale"})
    assert env == {
        "HOME": "/root", "SEED": "3", "TOKEN": "s3cret",
        "PYTHONPATH": AUTOFLUSH_DIR, "BATCHAI_FLUSH_SECONDS": "0.05",
        "PATH": "/venv/bin:/opt/bin",  # the spec's PATH, behind the node's interpreter
        "BATCHAI_RUN_ID": "r1", "BATCHAI_EXPERIMENT": "exp", "BATCHAI_NODE_INDEX": "1",
        "BATCHAI_METRICS_FILE": "/nodes/n1/runs/r1/metrics.jsonl",
        "BATCHAI_ARTIFACTS_DIR": "/nodes/n1/runs/r1/artifacts",
        "AZ_BATCHAI_JOB_MOUNT_ROOT": "/nodes/n1/runs/r1/mounts",
        "AZ_BATCHAI_MOUNT_ROOT": "/nodes/n1/mounts",
        "AZ_BATCHAI_JOB_TEMP": "/nodes/n1/runs/r1/temp",
        "AZ_BATCHAI_SHARED_JOB_TEMP": "/shared/jobs/r1/temp",
        "AZ_BATCHAI_STDOUTERR_DIR": "/nodes/n1/runs/r1/stdouterr",
        "AZ_BATCHAI_NUM_GPUS": "2", "AZ_BATCHAI_NODE_COUNT": "2",
        "AZ_BATCHAI_JOB_TEMP_DIR": "/nodes/n1/runs/r1/temp",
        "AZ_BATCHAI_MPI_HOST_FILE": "/nodes/n1/runs/r1/hostfile",
        "AZ_BATCH_HOST_LIST": "10.200.9.2,10.200.9.3",
        "AZ_BATCH_MASTER_NODE": "10.200.9.2:29600",
        "AZ_BATCHAI_PYTORCH_INIT_METHOD": "tcp://10.200.9.2:29600",
        "AZ_BATCHAI_PYTORCH_BACKEND": "gloo",
    }
    assert job_env(make_manifest(), {})["PATH"] == "/:/usr/bin:/bin"
    assert job_env(make_manifest(), {})["AZ_BATCHAI_SHARED_JOB_TEMP"] == "/nodes/n0/runs/r1/temp"


def test_argv_of_a_script_a_command_and_an_interpreter() -> None:
    env = {"SEED": "3", "D": "/data"}
    assert job_argv(JobSpec(script="$D/t.py", arguments=["--s", "${SEED}", "$NOPE"]), env, "/py") == \
        ["/py", "/data/t.py", "--s", "3", "$NOPE"]
    assert job_argv(JobSpec(command="python t.py $SEED"), env, "/py") == ["/bin/bash", "-c", "python t.py $SEED"]
    assert job_argv(JobSpec(script="t.py", python_interpreter="$D/py"), env, "/py", ["x"]) == \
        ["/data/py", "t.py", "x"]
    with pytest.raises(SpecError):
        job_argv(JobSpec(), env, "/py")
    assert expand("${A}$B-$C", {"A": "1", "B": "2"}) == "12-$C"


def test_log_names_and_the_main_log() -> None:
    assert log_names(JobSpec(script="t"), 0, 0) == ("stdout.txt", "stderr.txt")
    assert log_names(JobSpec(script="t", node_count=2), 1, 0) == ("stdout-1-0.txt", "stderr-1-0.txt")
    assert log_names(JobSpec(script="t", node_count=2, master_only=True), 0, 0) == ("stdout.txt", "stderr.txt")
    assert main_log_name(JobSpec(script="t", node_count=2, distribution="pytorch")) == "stdout-0-0.txt"
    assert main_log_name({"script": "t", "distribution": "tensorflow"}) == "stdout-wk-0.txt"  # stored form
    assert main_log_name({"script": "t", "distribution": "mpi", "node_count": 2}) == "stdout.txt"
    assert main_log_name({}) == "stdout.txt"


def test_gpu_split() -> None:
    gpus = ["0", "1", "2", "3"]
    assert [gpu_split(gpus, 0, r, 2) for r in (0, 1)] == ["0,1", "2,3"]
    assert [gpu_split(gpus, 1, r, 2) for r in (0, 1)] == ["0", "1"]
    assert gpu_split(gpus, 3, 1, 2) == "3" and gpu_split(gpus, 2, 2, 3) == ""
    assert gpu_split([], 0, 0, 1) is None


def test_job_preparation_plan() -> None:
    one = job_prep_plan(make_manifest(spec={"job_preparation": "pip install x"}, nodes=1), {"A": "1"})
    assert one == ProcessPlan(name="job_prep", argv=["/bin/bash", "-c", "pip install x"],
                              env={"A": "1", "AZ_BATCHAI_TASK_INDEX": "0"},
                              stdout="stdout-job_prep.txt", stderr="stderr-job_prep.txt")
    two = job_prep_plan(make_manifest(spec={"job_preparation": "true"}, node_index=1), {})
    assert (two.stdout, two.stderr) == ("stdout-job_prep-1.txt", "stderr-job_prep-1.txt")
    assert two.env["AZ_BATCHAI_TASK_INDEX"] == "1"  # job preparation knows its node, as on Batch AI


def test_the_batch_ai_cluster_variables_follow_the_spec_and_the_nodes() -> None:
    m = make_manifest(spec={"distribution": "pytorch", "communication_backend": "nccl"}, nodes=3,
                      master_port=29700)
    env = job_env(m, {"AZ_BATCH_HOST_LIST": "stale"})
    assert env["AZ_BATCHAI_PYTORCH_BACKEND"] == "nccl"
    assert env["AZ_BATCHAI_PYTORCH_INIT_METHOD"] == "tcp://10.200.9.2:29700"
    assert env["AZ_BATCH_MASTER_NODE"] == "10.200.9.2:29700"
    assert env["AZ_BATCH_HOST_LIST"] == "10.200.9.2,10.200.9.3,10.200.9.4"
    assert env["AZ_BATCHAI_JOB_TEMP_DIR"] == env["AZ_BATCHAI_JOB_TEMP"] == "/nodes/n0/runs/r1/temp"
    single = job_env(make_manifest(nodes=1), {})
    assert single["AZ_BATCH_HOST_LIST"] == "10.200.9.2" and single["AZ_BATCHAI_PYTORCH_BACKEND"] == "gloo"

"""Distribution -> processes: the plans a node agent starts, checked process by process."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.errors import SpecError
from batchai_jupyter.node.launch import main_log_name, plan_processes
from batchai_jupyter.node.launch_dist import hostfile_text, tf_layout


def _job(tmp_path: Path, spec: dict, node_index: int = 0, nodes: int = 2, gpus: int = 0) -> dict:
    base = {"script": "train.py", "arguments": ["--lr", "$SEED"], "node_count": nodes,
            "process_count_per_node": 1, "distribution": None, "gpus_per_process": 0}
    base.update(spec)
    node_list = [{"id": f"n{i}", "address": f"10.200.9.{i + 2}", "gpus": gpus,
                  "gpu_ids": [str(g) for g in range(gpus)], "root": str(tmp_path / f"n{i}")}
                 for i in range(nodes)]
    root = tmp_path / f"n{node_index}"
    (root / "runs" / "r1").mkdir(parents=True, exist_ok=True)
    return {"run_id": "r1", "run_key": "r1", "node_root": str(root), "node_index": node_index,
            "nodes": node_list, "master_port": 29600, "spec": base}


ENV = {"PATH": "/usr/bin:/bin", "SEED": "3", "AZ_BATCHAI_JOB_TEMP": "/t", "BATCHAI_RUN_ID": "r1"}


def test_pytorch_processes_get_ranks_and_their_own_gpus(tmp_path: Path) -> None:
    spec = {"distribution": "pytorch", "process_count_per_node": 2}
    plans = plan_processes(_job(tmp_path, spec, node_index=1, gpus=4), ENV, "/py")
    assert [p.name for p in plans] == ["1-0", "1-1"]
    assert [p.stdout for p in plans] == ["stdout-1-0.txt", "stdout-1-1.txt"]
    assert [p.env["RANK"] for p in plans] == ["2", "3"]
    assert [p.env["CUDA_VISIBLE_DEVICES"] for p in plans] == ["0,1", "2,3"]
    env = plans[1].env
    assert (env["MASTER_ADDR"], env["MASTER_PORT"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["NODE_RANK"],
            env["LOCAL_WORLD_SIZE"]) == ("10.200.9.2", "29600", "4", "1", "1", "2")
    assert plans[0].argv == ["/py", "train.py", "--lr", "3"]  # $VAR from the process's environment


def test_tensorflow_layout_spreads_tasks_and_names_logs(tmp_path: Path) -> None:
    spec = {"distribution": "tensorflow", "process_count_per_node": 2, "worker_count": 2,
            "parameter_server_count": 2, "tensorflow_arguments": {"ps": ["--ps"]}}
    node0 = plan_processes(_job(tmp_path, spec, 0), ENV, "/py")
    node1 = plan_processes(_job(tmp_path, spec, 1), ENV, "/py")
    assert [p.stdout for p in node0] == ["stdout-wk-0.txt", "stdout-ps-0.txt"]
    assert [p.stdout for p in node1] == ["stdout-wk-1.txt", "stdout-ps-1.txt"]
    config = json.loads(node1[1].env["TF_CONFIG"])
    assert config == {"cluster": {"ps": ["10.200.9.2:29603", "10.200.9.3:29604"],
                                  "worker": ["10.200.9.2:29601", "10.200.9.3:29602"]},
                      "task": {"type": "ps", "index": 1}, "environment": "cloud"}
    assert node0[0].env["AZ_BATCHAI_TASK_TYPE"] == "master"
    assert node1[0].env["AZ_BATCHAI_TASK_TYPE"] == "worker"
    assert node1[1].argv[-1] == "--ps" and node0[0].argv[-2:] == ["--lr", "3"]
    assert main_log_name(spec) == "stdout-wk-0.txt"


def test_tensorflow_tasks_that_do_not_fit_are_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        tf_layout({"worker_count": 3, "parameter_server_count": 1, "process_count_per_node": 1},
                  [{"address": "a"}, {"address": "b"}], 1000)
    assert err.value.field == "worker_count" and "2 process slots" in str(err.value)
    with pytest.raises(SpecError) as err:  # caught at submit, before anything is uploaded
        bai.JobSpec(command="python t.py", distribution="tensorflow", node_count=2, worker_count=2,
                    parameter_server_count=1).validate(check_files=False)
    assert err.value.field == "worker_count"


def test_mpi_node_zero_runs_one_mpirun_over_a_hostfile(tmp_path: Path) -> None:
    spec = {"distribution": "mpi", "process_count_per_node": 2, "secrets": ["TOKEN"]}
    other = plan_processes(_job(tmp_path, spec, 1), ENV, "/py")
    assert other == []  # node 1's ranks come from node 0's mpirun
    ready = json.loads((tmp_path / "n1" / "runs" / "r1" / "mpi-rank.json").read_text())
    assert ready["cwd"] == str(tmp_path / "n1" / "runs" / "r1" / "wd") and "TOKEN" not in ready["env"]
    (plan,) = plan_processes(_job(tmp_path, spec, 0), ENV, "/py")
    assert plan.name == "mpirun" and plan.stdout == "stdout.txt" and main_log_name(spec) == "stdout.txt"
    hostfile = plan.env["AZ_BATCHAI_MPI_HOST_FILE"]
    assert Path(hostfile).read_text() == "10.200.9.2 slots=2\n10.200.9.3 slots=2\n"
    argv = " ".join(plan.argv)
    assert f"--hostfile {hostfile}" in argv and "-x TOKEN" in argv
    assert f"--host 10.200.9.3:2 /py -m batchai_jupyter.node.mpi_rank {tmp_path}/n1/runs/r1" in argv
    assert hostfile_text([{"address": "127.0.0.1"}] * 2, 3) == "127.0.0.1 slots=6\n"


def test_mpi_without_mpirun_names_the_node(tmp_path: Path) -> None:
    spec = {"distribution": "mpi"}
    with pytest.raises(SpecError) as err:
        plan_processes(_job(tmp_path, spec, 0), dict(ENV, PATH=str(tmp_path)), "/py")
    assert "mpirun not found on node n0 (10.200.9.2)" in str(err.value)

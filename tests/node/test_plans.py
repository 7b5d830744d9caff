"""Distribution -> the plans a node agent starts, checked argument by argument (no processes)."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.errors import SpecError
from batchai_jupyter.node.agent import plan_inputs, plan_node, read_mca
from batchai_jupyter.node.manifest import ManifestNode
from batchai_jupyter.node.mpi_rank import rank_argv, rank_environ
from batchai_jupyter.node.plan_mpi import RankEnv, hostfile_text, mca_args
from batchai_jupyter.node.plan_tensorflow import TfTask, tf_layout
from batchai_jupyter.node.process import NodePlan, PlanInputs, PlannedFile
from batchai_jupyter.spec import JobSpec

from .helpers import make_manifest

ENV = {"PATH": "/usr/bin:/bin", "SEED": "3", "AZ_BATCHAI_JOB_TEMP": "/t", "BATCHAI_RUN_ID": "r1",
       "SLURM_JOB_ID": "7", "HOME": "/root"}


def _plan(spec: dict, node_index: int = 0, env: dict | None = None, nodes: int = 2, gpus: int = 0,
          **facts) -> NodePlan:
    m = make_manifest(spec=spec, node_index=node_index, nodes=nodes, gpus=gpus)
    return plan_node(PlanInputs(manifest=m, env=ENV if env is None else env, **facts))


def test_no_distribution_runs_independent_processes() -> None:
    plan = _plan({"process_count_per_node": 2}, node_index=1, gpus=2)
    assert plan.files == []
    assert [(p.name, p.stdout, p.stderr) for p in plan.processes] == [
        ("1-0", "stdout-1-0.txt", "stderr-1-0.txt"), ("1-1", "stdout-1-1.txt", "stderr-1-1.txt")]
    assert plan.processes[1].env == dict(ENV, AZ_BATCHAI_TASK_INDEX="3", CUDA_VISIBLE_DEVICES="1",
                                         OMP_NUM_THREADS="1")
    assert plan.processes[0].argv == ["/py", "train.py", "--lr", "3"]
    (single,) = _plan({}, nodes=1).processes
    assert (single.name, single.stdout, single.env) == ("0-0", "stdout.txt", dict(ENV, AZ_BATCHAI_TASK_INDEX="0"))


def test_pytorch_processes_get_ranks_and_their_own_gpus() -> None:
    plans = _plan({"distribution": "pytorch", "process_count_per_node": 2}, node_index=1, gpus=4).processes
    assert [p.name for p in plans] == ["1-0", "1-1"]
    assert [p.stdout for p in plans] == ["stdout-1-0.txt", "stdout-1-1.txt"]
    assert plans[1].env == dict(ENV, AZ_BATCHAI_TASK_INDEX="3", CUDA_VISIBLE_DEVICES="2,3", OMP_NUM_THREADS="1",
                                MASTER_ADDR="10.200.9.2", MASTER_PORT="29600", WORLD_SIZE="4", RANK="3",
                                LOCAL_RANK="1", NODE_RANK="1", LOCAL_WORLD_SIZE="2")
    assert plans[0].env["RANK"] == "2" and plans[0].env["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert plans[0].argv == ["/py", "train.py", "--lr", "3"]  # $VAR from the process's environment


def test_processes_sharing_a_host_share_its_cpus() -> None:
    def threads(spec: dict, nodes: list[str], env: dict | None = None, cpus: int = 8) -> list[str | None]:
        m = make_manifest(spec=spec, nodes=len(nodes))
        m = dataclasses.replace(m, nodes=[dataclasses.replace(n, address=a) for n, a in zip(m.nodes, nodes)])
        plan = plan_node(PlanInputs(manifest=m, env=ENV if env is None else env, cpu_count=cpus))
        return [p.env.get("OMP_NUM_THREADS") for p in plan.processes]

    assert threads({"process_count_per_node": 2}, ["10.200.9.2", "10.200.9.3"]) == ["4", "4"]
    # the nodes of a local cluster: one host, so 2 nodes x 2 processes share its 8 CPUs
    assert threads({"process_count_per_node": 2}, ["127.0.0.1", "127.0.0.1"]) == ["2", "2"]
    assert threads({}, ["127.0.0.1", "127.0.0.1"], cpus=1) == ["1"]
    assert threads({}, ["10.200.9.2", "10.200.9.3"]) == [None]  # alone on its host: every CPU
    assert threads({"process_count_per_node": 2, "environment_variables": {"OMP_NUM_THREADS": "3"}},
                   ["10.200.9.2"]) == [None, None]  # the job's own (job_env sets it) is not overridden
    assert threads({"process_count_per_node": 2}, ["10.200.9.2"], env=dict(ENV, OMP_NUM_THREADS="6")) == ["6", "6"]
    rank = plan_node(PlanInputs(manifest=make_manifest(spec={"distribution": "mpi", "process_count_per_node": 4}),
                                env=ENV, mpirun="/usr/bin/mpirun", cpu_count=8)).files[1]
    assert json.loads(rank.text)["env"]["OMP_NUM_THREADS"] == "2"


def test_master_only_runs_on_node_zero_alone() -> None:
    spec = {"distribution": "pytorch", "process_count_per_node": 4, "master_only": True}
    assert _plan(spec, node_index=1) == NodePlan()
    (only,) = _plan(spec).processes
    assert only.stdout == "stdout.txt" and only.env["WORLD_SIZE"] == "2"


def test_tensorflow_layout_spreads_tasks_and_names_logs() -> None:
    spec = {"distribution": "tensorflow", "process_count_per_node": 2, "worker_count": 2,
            "parameter_server_count": 2, "tensorflow_arguments": {"ps": ["--ps"]}}
    node0, node1 = _plan(spec, 0).processes, _plan(spec, 1).processes
    assert [(p.name, p.stdout, p.stderr) for p in node0] == [("wk-0", "stdout-wk-0.txt", "stderr-wk-0.txt"),
                                                             ("ps-0", "stdout-ps-0.txt", "stderr-ps-0.txt")]
    assert [p.stdout for p in node1] == ["stdout-wk-1.txt", "stdout-ps-1.txt"]
    tf_config = json.dumps({"cluster": {"ps": ["10.200.9.2:29603", "10.200.9.3:29604"],
                                        "worker": ["10.200.9.2:29601", "10.200.9.3:29602"]},
                            "task": {"type": "ps", "index": 1}, "environment": "cloud"})
    assert node1[1].env == dict(ENV, AZ_BATCHAI_PS_HOSTS="10.200.9.2:29603,10.200.9.3:29604",
                                AZ_BATCHAI_WORKER_HOSTS="10.200.9.2:29601,10.200.9.3:29602",
                                AZ_BATCHAI_TASK_INDEX="1", AZ_BATCHAI_TASK_TYPE="ps", TF_CONFIG=tf_config)
    assert node0[0].env["AZ_BATCHAI_TASK_TYPE"] == "master"
    assert node1[0].env["AZ_BATCHAI_TASK_TYPE"] == "worker"
    assert node1[1].argv == ["/py", "train.py", "--ps"] and node0[0].argv == ["/py", "train.py", "--lr", "3"]
    master = _plan(dict(spec, tensorflow_arguments={"worker": ["--w"]}), 0).processes[0]
    assert master.argv[-1] == "--w"  # the master takes the workers' arguments unless it has its own


def test_tensorflow_tasks_that_do_not_fit_are_a_spec_error() -> None:
    nodes = [ManifestNode(id="a", address="a"), ManifestNode(id="b", address="b")]
    assert tf_layout(JobSpec(worker_count=1, parameter_server_count=1), nodes, 1000) == [
        TfTask(type="worker", index=0, node=0, local=0, host="a:1001"),
        TfTask(type="ps", index=0, node=1, local=0, host="b:1002")]
    with pytest.raises(SpecError) as err:
        tf_layout(JobSpec(worker_count=3, parameter_server_count=1), nodes, 1000)
    assert err.value.field == "worker_count" and "2 process slots" in str(err.value)
    with pytest.raises(SpecError) as err:  # caught at submit, before anything is uploaded
        bai.JobSpec(command="python t.py", distribution="tensorflow", node_count=2, worker_count=2,
                    parameter_server_count=1).validate(check_files=False)
    assert err.value.field == "worker_count"


MPI = {"distribution": "mpi", "process_count_per_node": 2, "secrets": {"TOKEN": "x"},
       "environment_variables": {"E": "1"}}


def test_mpi_other_nodes_only_leave_their_files() -> None:
    plan = _plan(MPI, 1, mpirun=None)  # node 1 needs no mpirun: node 0's starts its ranks
    assert plan.processes == [] and plan.await_ranks == 2  # the agent waits for its 2 ranks
    hostfile, ready = plan.files
    assert hostfile == PlannedFile("/nodes/n1/runs/r1/hostfile", "10.200.9.2 slots=2\n10.200.9.3 slots=2\n")
    assert (ready.path, ready.mode) == ("/nodes/n1/runs/r1/mpi-rank.json", 0o600)
    assert RankEnv.from_json(ready.text) == RankEnv(
        cwd="/nodes/n1/runs/r1/wd", argv=["/py", "train.py", "--lr", "$SEED"], gpu_ids=[], gpus_per_process=0,
        per_node=2, expand=True,
        env={"AZ_BATCHAI_JOB_TEMP": "/t", "BATCHAI_RUN_ID": "r1", "E": "1", "PATH": "/usr/bin:/bin",
             "OMP_NUM_THREADS": "1", "AZ_BATCHAI_MPI_HOST_FILE": "/nodes/n1/runs/r1/hostfile"})


def test_mpi_node_zero_runs_one_mpirun_over_a_hostfile() -> None:
    plan = _plan(MPI, 0, mpirun="/usr/bin/mpirun", cpu_count=1, mca={"plm_rsh_agent": "ssh -p 2222"})
    assert [f.path for f in plan.files] == ["/nodes/n0/runs/r1/hostfile", "/nodes/n0/runs/r1/mpi-rank.json"]
    (proc,) = plan.processes
    assert plan.await_ranks == 0  # node 0's mpirun itself ends after every rank
    assert (proc.name, proc.stdout, proc.stderr) == ("mpirun", "stdout.txt", "stderr.txt")
    assert proc.argv == [
        "/usr/bin/mpirun", "--hostfile", "/nodes/n0/runs/r1/hostfile", "--oversubscribe",
        "--mca", "plm_rsh_agent", "ssh -p 2222", "-x", "TOKEN",
        "-np", "2", "--host", "10.200.9.2:2", "/py", "-m", "batchai_jupyter.node.mpi_rank", "/nodes/n0/runs/r1",
        ":", "-np", "2", "--host", "10.200.9.3:2", "/py", "-m", "batchai_jupyter.node.mpi_rank",
        "/nodes/n1/runs/r1"]
    env = {k: v for k, v in ENV.items() if k != "SLURM_JOB_ID"}
    assert proc.env == dict(env, AZ_BATCHAI_MPI_HOST_FILE="/nodes/n0/runs/r1/hostfile", AZ_BATCHAI_TASK_INDEX="0")


def test_mpirun_flags_follow_the_node_facts() -> None:
    argv = _plan(MPI, 0, mpirun="/m", as_root=True, cpu_count=8).processes[0].argv
    assert argv[:4] == ["/m", "--hostfile", "/nodes/n0/runs/r1/hostfile", "--allow-run-as-root"]
    assert "--oversubscribe" not in argv and "--mca" not in argv
    assert hostfile_text([ManifestNode(id="a", address="127.0.0.1")] * 2, 3) == "127.0.0.1 slots=6\n"
    assert mca_args({"b": "2", "a": "1"}) == ["--mca", "a", "1", "--mca", "b", "2"]


def test_mpi_without_mpirun_names_the_node() -> None:
    with pytest.raises(SpecError) as err:
        _plan({"distribution": "mpi"}, 0, env=dict(ENV, PATH="/nowhere"), mpirun=None)
    assert "mpirun not found on node n0 (10.200.9.2); PATH=/nowhere" in str(err.value)


def test_an_unknown_distribution_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as err:
        _plan({"distribution": "horovod"})
    assert err.value.field == "distribution" and "'horovod'" in str(err.value)


def test_a_rank_takes_its_nodes_environment() -> None:
    plan = RankEnv(cwd="/wd", env={"A": "1"}, argv=["/py", "t.py"], gpu_ids=["0", "1", "2", "3"], per_node=2)
    env = rank_environ(plan, {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "1", "A": "0"})
    assert env == {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "1", "A": "1",
                   "AZ_BATCHAI_TASK_INDEX": "3", "CUDA_VISIBLE_DEVICES": "2,3"}
    assert RankEnv.from_json(plan.to_json()) == plan


# -- what the agent gathers for the planners (the impure side, kept in agent.py) ------------------
def test_plan_inputs_look_up_mpirun_and_the_cluster_settings(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    mpirun = tmp_path / "bin" / "mpirun"
    mpirun.write_text("#!/bin/sh\n")
    mpirun.chmod(0o755)
    (tmp_path / "mpi-mca.json").write_text(json.dumps({"plm_rsh_agent": "ssh", "n": 2}))
    m = make_manifest(spec={"distribution": "mpi"}, node_root=str(tmp_path))
    facts = plan_inputs(m, {"PATH": str(tmp_path / "bin")})
    assert facts.mpirun == str(mpirun) and facts.mca == {"plm_rsh_agent": "ssh", "n": "2"}
    assert facts.as_root == (os.geteuid() == 0) and facts.cpu_count == (os.cpu_count() or 1)
    assert plan_inputs(make_manifest(spec={"distribution": "mpi"}, node_root=str(tmp_path / "x")),
                       {"PATH": "/nowhere"}).mca == {}
    plain = plan_inputs(make_manifest(node_root=str(tmp_path)), {"PATH": str(tmp_path / "bin")})
    assert plain.mpirun is None and plain.mca == {}  # only MPI runs look
    (tmp_path / "bad.json").write_text("{")
    assert read_mca(str(tmp_path / "bad.json")) == {}


def test_each_rank_expands_its_own_arguments() -> None:
    spec = dict(MPI, arguments=["--rank", "$AZ_BATCHAI_TASK_INDEX", "${SEED}x", "$UNSET"])
    ready = _plan(spec, 1, mpirun=None).files[1]
    plan = RankEnv.from_json(ready.text)
    assert plan.argv == ["/py", "train.py", "--rank", "$AZ_BATCHAI_TASK_INDEX", "${SEED}x", "$UNSET"]
    for rank in ("2", "3"):
        env = rank_environ(plan, {"OMPI_COMM_WORLD_RANK": rank, "SEED": "7"})
        assert rank_argv(plan, env) == ["/py", "train.py", "--rank", rank, "7x", "$UNSET"]


def test_a_command_line_rank_is_left_to_its_shell() -> None:
    spec = {"distribution": "mpi", "command": "echo $AZ_BATCHAI_TASK_INDEX", "script": None}
    plan = RankEnv.from_json(_plan(spec, 1, mpirun=None).files[1].text)
    assert plan.expand is False
    env = rank_environ(plan, {"OMPI_COMM_WORLD_RANK": "1"})
    assert rank_argv(plan, env) == ["/bin/bash", "-c", "echo $AZ_BATCHAI_TASK_INDEX"]
    assert RankEnv.from_json(json.dumps({"cwd": "/", "env": {}, "argv": ["a"]})).expand is False


def test_every_toolkit_expands_arguments_per_process() -> None:
    args = {"arguments": ["--i", "$AZ_BATCHAI_TASK_INDEX"], "process_count_per_node": 2}
    per_process = _plan(args, 1).processes
    assert [p.argv[2:] for p in per_process] == [["--i", "2"], ["--i", "3"]]
    torch = _plan(dict(args, distribution="pytorch", arguments=["$RANK", "${LOCAL_RANK}"]), 1).processes
    assert [p.argv[2:] for p in torch] == [["2", "0"], ["3", "1"]]
    tf = _plan({"distribution": "tensorflow", "worker_count": 2, "process_count_per_node": 1,
                "tensorflow_arguments": {"master": ["$AZ_BATCHAI_TASK_TYPE"],
                                         "worker": ["${AZ_BATCHAI_TASK_TYPE}-$AZ_BATCHAI_TASK_INDEX"]}}, 1)
    assert [p.argv[2:] for p in tf.processes] == [["worker-1"]]


def test_mpi_ranks_carry_the_azure_batch_variables() -> None:
    env = dict(ENV, AZ_BATCH_HOST_LIST="10.200.9.2,10.200.9.3", AZ_BATCH_MASTER_NODE="10.200.9.2:29600",
               AZ_BATCHAI_PYTORCH_BACKEND="gloo")
    plan = RankEnv.from_json(_plan(MPI, 1, env=env, mpirun=None).files[1].text)
    assert plan.env["AZ_BATCH_HOST_LIST"] == "10.200.9.2,10.200.9.3"
    assert plan.env["AZ_BATCH_MASTER_NODE"] == "10.200.9.2:29600"
    assert plan.env["AZ_BATCHAI_PYTORCH_BACKEND"] == "gloo" and "HOME" not in plan.env

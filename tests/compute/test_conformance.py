"""One suite, every backend: what a user checks of a run is the same on local, ssh and slurm."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from tests.support import wait_until

pytestmark = pytest.mark.timeout(240)

ENV_NAMES = ["AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_MOUNT_ROOT", "AZ_BATCHAI_JOB_TEMP",
             "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_STDOUTERR_DIR", "AZ_BATCHAI_NUM_GPUS",
             "AZ_BATCHAI_MPI_HOST_FILE", "AZ_BATCHAI_TASK_INDEX", "BATCHAI_RUN_ID", "BATCHAI_EXPERIMENT",
             "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK",
             "LOCAL_WORLD_SIZE"]




def _write(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(body))
    return folder


def _done(run: bai.Run, timeout: float = 150) -> dict:
    return run.wait_for_completion(show_output=False, timeout=timeout, raise_on_error=False)


def test_submit_completes_with_logs_metrics_and_outputs(backend_cluster, src: Path) -> None:
    ws, cluster = backend_cluster
    run = ws.experiment("conf").submit(JobSpec(source_directory=src, script="train.py", arguments=["3"]),
                                       cluster=cluster)
    details = _done(run)
    assert details["status"] == "Completed", details
    assert list(run.stream(follow=False)) == ["epoch 0 loss 1.000", "epoch 1 loss 0.500",
                                              "epoch 2 loss 0.333"]
    assert run.get_metrics()["loss"] == [1.0, 0.5, pytest.approx(1 / 3)]
    names = run.get_file_names()
    assert "outputs/model.txt" in names and "logs/train.log" in names and "stderr.txt" in names
    out = Path(ws.path) / "dl"
    run.download_file("outputs/model.txt", out / "model.txt")
    assert (out / "model.txt").read_text() == "weights"


def test_a_failing_process_fails_the_run_with_its_exit_code(backend_cluster, tmp_path: Path) -> None:
    ws, cluster = backend_cluster
    src = _write(tmp_path / "fail", "fail.py", """
        import sys
        print("about to fail", flush=True)
        print("bad thing happened", file=sys.stderr)
        sys.exit(3)
    """)
    run = ws.experiment("conf").submit(JobSpec(source_directory=src, script="fail.py"), cluster=cluster)
    details = _done(run)
    assert details["status"] == "Failed"
    error = ws.history.run_row(run.id)["error"]
    assert error["exit_code"] == 3 and "exited with code 3" in error["message"]
    assert "bad thing happened" in "\n".join(error["last_lines"])
    assert list(run.stream(follow=False)) == ["about to fail"]


def _node_job_pids(ws: bai.Workspace, marker: str) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=False).stdout
    return [int(line.split()[0]) for line in out.splitlines() if marker in line and "ps -eo" not in line]


def test_cancel_stops_every_process_on_every_node(backend_cluster, tmp_path: Path) -> None:
    ws, cluster = backend_cluster
    src = _write(tmp_path / "sleepy", "sleepy_job.py", """
        import os, time
        print("started", os.environ["AZ_BATCHAI_TASK_INDEX"], flush=True)
        time.sleep(300)
    """)
    run = ws.experiment("conf").submit(JobSpec(source_directory=src, script="sleepy_job.py",
                                               node_count=2), cluster=cluster)
    assert wait_until(lambda: ws.history.run_row(run.id)["status"] == "Running", 90)
    first = run.stream("stdout-0-0.txt")
    assert next(first) == "started 0"
    run.cancel()
    assert _done(run)["status"] == "Canceled"
    assert wait_until(lambda: not _node_job_pids(ws, "sleepy_job.py"), 20), "a job process outlived cancel"


def test_gang_of_two_nodes_gets_the_job_environment(backend_cluster, tmp_path: Path) -> None:
    ws, cluster = backend_cluster
    src = _write(tmp_path / "envjob", "show_env.py", f"""
        import json, os
        names = {ENV_NAMES!r}
        print(json.dumps({{n: os.environ.get(n) for n in names + ["SEED", "API_KEY"]}}))
        assert os.getcwd().endswith("wd")
        open(os.path.join(os.environ["AZ_BATCHAI_JOB_TEMP"], "t"), "w").write("x")
    """)
    spec = JobSpec(source_directory=src, script="show_env.py", node_count=2, process_count_per_node=2,
                   distribution="pytorch", environment_variables={"SEED": "7"},
                   secrets={"API_KEY": "s3cret"})
    run = ws.experiment("conf").submit(spec, cluster=cluster)
    assert _done(run)["status"] == "Completed"
    envs = {}
    for node in (0, 1):
        for local in (0, 1):
            lines = list(run.stream(f"stdout-{node}-{local}.txt", follow=False))
            envs[(node, local)] = json.loads(lines[-1])
    ranks = sorted(int(e["RANK"]) for e in envs.values())
    assert ranks == [0, 1, 2, 3]
    for (node, local), env in envs.items():
        assert env["WORLD_SIZE"] == "4" and env["LOCAL_WORLD_SIZE"] == "2"
        assert env["NODE_RANK"] == str(node) and env["LOCAL_RANK"] == str(local)
        assert env["RANK"] == env["AZ_BATCHAI_TASK_INDEX"] == str(node * 2 + local)
        assert env["MASTER_ADDR"] == envs[(0, 0)]["MASTER_ADDR"] and env["MASTER_PORT"].isdigit()
        assert env["BATCHAI_RUN_ID"] == run.id and env["BATCHAI_EXPERIMENT"] == "conf"
        assert env["SEED"] == "7" and env["API_KEY"] == "s3cret"
        assert env["AZ_BATCHAI_NUM_GPUS"] == "0"
        for name in ("AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_JOB_TEMP", "AZ_BATCHAI_STDOUTERR_DIR",
                     "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_MOUNT_ROOT"):
            assert env[name], name
    # each node has its own temp and stdout folders
    assert envs[(0, 0)]["AZ_BATCHAI_JOB_TEMP"] != envs[(1, 0)]["AZ_BATCHAI_JOB_TEMP"]
    assert "s3cret" not in json.dumps(ws.history.run_row(run.id)["spec"])


def test_mpi_job_runs_one_mpirun_across_two_nodes(backend_cluster, tmp_path: Path) -> None:
    pytest.importorskip("mpi4py")
    ws, cluster = backend_cluster
    src = _write(tmp_path / "mpijob", "allreduce.py", """
        import os, socket
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
        total = comm.allreduce(comm.Get_rank() + 1, op=MPI.SUM)
        hosts = comm.gather(socket.gethostname(), root=0)
        with open(os.path.join("outputs", f"rank-{comm.Get_rank()}.txt"), "w") as fh:
            fh.write(os.environ["AZ_BATCHAI_TASK_INDEX"])
        if comm.Get_rank() == 0:
            print("size", comm.Get_size(), "sum", total, "hosts", len(set(hosts)), flush=True)
            print("hostfile", open(os.environ["AZ_BATCHAI_MPI_HOST_FILE"]).read().split(), flush=True)
    """)
    spec = JobSpec(source_directory=src, script="allreduce.py", node_count=2, process_count_per_node=2,
                   distribution="mpi")
    run = ws.experiment("conf").submit(spec, cluster=cluster)
    details = _done(run)
    assert details["status"] == "Completed", (details, list(run.stream("stderr.txt", follow=False)))
    lines = list(run.stream(follow=False))
    summary = next(line for line in lines if line.startswith("size"))
    assert summary.startswith("size 4 sum 10")
    if ws.cluster(cluster).backend == "ssh":
        assert summary.endswith("hosts 2")  # ranks really ran on both hosts
    names = run.get_file_names()
    assert {f"outputs/rank-{r}.txt" for r in range(4)} <= set(names)


def test_tensorflow_tasks_get_their_roles(backend_cluster, tmp_path: Path) -> None:
    ws, cluster = backend_cluster
    src = _write(tmp_path / "tfjob", "task.py", """
        import json, os, sys
        print(json.dumps({"argv": sys.argv[1:], "tf": json.loads(os.environ["TF_CONFIG"]),
                          "type": os.environ["AZ_BATCHAI_TASK_TYPE"],
                          "index": os.environ["AZ_BATCHAI_TASK_INDEX"],
                          "ps": os.environ["AZ_BATCHAI_PS_HOSTS"],
                          "workers": os.environ["AZ_BATCHAI_WORKER_HOSTS"]}))
    """)
    spec = JobSpec(source_directory=src, script="task.py", node_count=2, process_count_per_node=2,
                   distribution="tensorflow", worker_count=3, parameter_server_count=1,
                   tensorflow_arguments={"master": ["--m"], "worker": ["--w"], "ps": ["--p"]})
    run = ws.experiment("conf").submit(spec, cluster=cluster)
    assert _done(run)["status"] == "Completed"
    seen = {}
    for name in ("wk-0", "wk-1", "wk-2", "ps-0"):
        seen[name] = json.loads(list(run.stream(f"stdout-{name}.txt", follow=False))[-1])
    workers = seen["wk-0"]["workers"].split(",")
    ps = seen["wk-0"]["ps"].split(",")
    assert len(workers) == 3 and len(ps) == 1 and len(set(workers + ps)) == 4
    assert seen["wk-0"]["type"] == "master" and seen["wk-0"]["argv"] == ["--m"]
    assert seen["wk-1"]["type"] == seen["wk-2"]["type"] == "worker" and seen["wk-2"]["argv"] == ["--w"]
    assert seen["ps-0"]["type"] == "ps" and seen["ps-0"]["argv"] == ["--p"]
    for name, info in seen.items():
        kind = "ps" if name.startswith("ps") else "worker"
        assert info["tf"]["task"] == {"type": kind, "index": int(name[-1])}
        assert info["tf"]["cluster"] == {"ps": ps, "worker": workers}
        assert info["index"] == name[-1]


def test_one_failing_process_stops_the_others_on_every_node(backend_cluster, tmp_path: Path) -> None:
    ws, cluster = backend_cluster
    src = _write(tmp_path / "onefails", "one_fails_job.py", """
        import os, sys, time
        if os.environ["AZ_BATCHAI_TASK_INDEX"] == "1":
            time.sleep(0.5)
            print("rank 1 gives up", file=sys.stderr)
            sys.exit(5)
        time.sleep(300)
    """)
    run = ws.experiment("conf").submit(JobSpec(source_directory=src, script="one_fails_job.py",
                                               node_count=2), cluster=cluster)
    t0 = time.time()
    assert _done(run)["status"] == "Failed"
    assert time.time() - t0 < 120
    error = ws.history.run_row(run.id)["error"]
    assert error["exit_code"] == 5 and "rank 1 gives up" in "\n".join(error["last_lines"])
    assert wait_until(lambda: not _node_job_pids(ws, "one_fails_job.py"), 20)


def test_engine_killed_mid_run_loses_no_line_or_metric(backend_cluster, tmp_path: Path) -> None:
    from batchai_jupyter.engine.control import engine_info, forget, is_running
    ws, cluster = backend_cluster
    gate = tmp_path / "gate"
    src = _write(tmp_path / "gated", "gated.py", f"""
        import os, time
        from batchai_jupyter import Run
        run = Run.get_context()
        for i in range(30):
            print(f"line {{i}}", flush=True)
            run.log("i", i)
            if i == 4:
                while not os.path.exists({str(gate)!r}):
                    time.sleep(0.02)
    """)
    run = ws.experiment("conf").submit(JobSpec(source_directory=src, script="gated.py"), cluster=cluster)
    stream = run.stream()
    assert [next(stream) for _ in range(5)] == [f"line {i}" for i in range(5)]
    pid = engine_info(ws.path)["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not is_running(ws.path), 10)
    gate.write_text("go")  # the job goes on without an engine
    forget(ws.path)
    assert list(stream) == [f"line {i}" for i in range(5, 30)]  # a new engine picks the run up
    assert engine_info(ws.path)["pid"] != pid
    assert _done(run)["status"] == "Completed"
    assert run.get_metrics()["i"] == list(range(30))


# -- Batch AI material runs unchanged: every variable, $VARs per process, no lost outputs --------
BATCHAI_CLUSTER_NAMES = ["AZ_BATCHAI_PYTORCH_INIT_METHOD", "AZ_BATCHAI_PYTORCH_BACKEND",
                         "AZ_BATCHAI_JOB_TEMP_DIR", "AZ_BATCH_HOST_LIST", "AZ_BATCH_MASTER_NODE"]


def test_every_process_sees_every_batch_ai_variable(backend_cluster, tmp_path: Path) -> None:
    ws, cluster = backend_cluster
    src = _write(tmp_path / "allenv", "all_env.py", f"""
        import json, os, sys
        names = {ENV_NAMES + BATCHAI_CLUSTER_NAMES!r}
        env = {{n: os.environ.get(n) for n in names}}
        env["hostfile"] = open(os.environ["AZ_BATCHAI_MPI_HOST_FILE"]).read().split()
        print(json.dumps({{"argv": sys.argv[1:], "env": env}}))
    """)
    spec = JobSpec(source_directory=src, script="all_env.py", node_count=2, distribution="pytorch",
                   communication_backend="nccl", arguments=["$AZ_BATCHAI_TASK_INDEX", "${NODE_RANK}"])
    run = ws.experiment("conf").submit(spec, cluster=cluster)
    assert _done(run)["status"] == "Completed"
    seen = [json.loads(list(run.stream(f"stdout-{n}-0.txt", follow=False))[-1]) for n in (0, 1)]
    assert [s["argv"] for s in seen] == [["0", "0"], ["1", "1"]]
    for out in seen:
        env = out["env"]
        assert all(env[n] for n in ENV_NAMES + BATCHAI_CLUSTER_NAMES), env
        master = f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
        assert env["AZ_BATCH_MASTER_NODE"] == master
        assert env["AZ_BATCHAI_PYTORCH_INIT_METHOD"] == f"tcp://{master}"
        assert env["AZ_BATCHAI_PYTORCH_BACKEND"] == "nccl"
        assert env["AZ_BATCHAI_JOB_TEMP_DIR"] == env["AZ_BATCHAI_JOB_TEMP"]
        assert len(env["AZ_BATCH_HOST_LIST"].split(",")) == 2
        assert env["AZ_BATCH_HOST_LIST"].split(",")[0] == env["MASTER_ADDR"]
        assert env["hostfile"] and env["hostfile"][0] in env["AZ_BATCH_HOST_LIST"].split(",")
    assert seen[0]["env"]["AZ_BATCH_HOST_LIST"] == seen[1]["env"]["AZ_BATCH_HOST_LIST"]


def _needs_mpirun() -> None:
    import shutil
    if shutil.which("mpirun") is None:
        pytest.skip(reason="no mpirun on this machine")


def test_mpi_ranks_expand_their_own_arguments(backend_cluster, tmp_path: Path) -> None:
    _needs_mpirun()
    ws, cluster = backend_cluster
    src = _write(tmp_path / "mpiargv", "argv.py", f"""
        import json, os, sys
        names = {BATCHAI_CLUSTER_NAMES!r}
        print(json.dumps({{"argv": sys.argv[1:], "env": {{n: os.environ.get(n) for n in names}}}}),
              flush=True)
    """)
    spec = JobSpec(source_directory=src, script="argv.py", node_count=2, distribution="mpi",
                   arguments=["--rank", "$AZ_BATCHAI_TASK_INDEX"])
    run = ws.experiment("conf").submit(spec, cluster=cluster)
    details = _done(run)
    assert details["status"] == "Completed", (details, list(run.stream("stderr.txt", follow=False)))
    seen = [json.loads(line) for line in run.stream(follow=False) if line.startswith("{")]
    assert sorted(s["argv"][1] for s in seen) == ["0", "1"], seen
    assert all(s["argv"][0] == "--rank" and all(s["env"].values()) for s in seen), seen


def test_mpi_outputs_of_a_rank_on_another_node_are_kept(backend_cluster, tmp_path: Path) -> None:
    _needs_mpirun()
    ws, cluster = backend_cluster
    store = ws.get_default_datastore()
    src = _write(tmp_path / "mpiout", "late.py", """
        import os, time
        rank = os.environ["AZ_BATCHAI_TASK_INDEX"]
        if rank == "1":
            time.sleep(2)  # long after its node's agent would have staged an empty folder
            for folder in ("outputs", os.environ["AZ_BATCHAI_OUTPUT_X"]):
                with open(os.path.join(folder, f"late-{rank}.txt"), "w") as fh:
                    fh.write(f"rank {rank}")
    """)
    spec = JobSpec(source_directory=src, script="late.py", node_count=2, distribution="mpi",
                   outputs={"X": store.path("out").as_upload()})
    run = ws.experiment("conf").submit(spec, cluster=cluster)
    details = _done(run)
    assert details["status"] == "Completed", (details, list(run.stream("stderr.txt", follow=False)))
    assert "outputs/late-1.txt" in run.get_file_names()
    run.download_file("outputs/late-1.txt", tmp_path / "got" / "late-1.txt")
    assert (tmp_path / "got" / "late-1.txt").read_text() == "rank 1"
    assert store.list(f"out/{run.id}/") == [f"out/{run.id}/late-1.txt"]
    store.download(tmp_path / "ds", prefix=f"out/{run.id}", show_progress=False)
    assert (tmp_path / "ds" / "out" / run.id / "late-1.txt").read_text() == "rank 1"

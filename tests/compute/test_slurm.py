"""The slurm backend against a real slurmctld with two slurmd (see slurm_env.py).

What a user checks: a run goes through sbatch with the options they asked for, runs the same
agent on every node, reports Slurm's state, stops on cancel, fails with Slurm's reason when Slurm
kills it, and leaves no job or process behind. Status comes from one batched squeue with backoff.
"""
from __future__ import annotations

import itertools
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.errors import ClusterError, SpecError
from tests.compute.slurm_env import make_slurm_cluster, slurm_env
from tests.support import wait_until

pytestmark = pytest.mark.timeout(180)




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
    assert wait_until(lambda: job_fields(slurm, job_id)["JobState"] == "COMPLETED", 30)  # ends by itself
    fields = job_fields(slurm, job_id)
    assert fields["NumNodes"] == "2" and fields["Partition"] == "debug"
    assert fields["TimeLimit"] == "00:12:00"  # 600 s + the agent's margin, in whole minutes
    names = sorted(run.get_file_names())
    assert "outputs/node-0.txt" in names
    lines = "".join(Path(ws.run_files_dir(run.id), "stdout-0-0.txt").read_text() +
                    Path(ws.run_files_dir(run.id), "stdout-1-0.txt").read_text())
    assert "slurm n1" in lines and "slurm n2" in lines and f"job {job_id}" in lines
    assert sorted(run.get_metrics()["node_seen"]) == [0, 1]
    assert ws.cluster(name).nodes() == []  # Slurm owns the nodes; none is held after the run


@pytest.fixture
def counted_bin(tmp_path: Path) -> Path:
    """A Slurm bin folder whose squeue logs each call (time and arguments) and then runs the real one."""
    folder = tmp_path / "slurmbin"
    folder.mkdir()
    for tool in ("sbatch", "scancel", "scontrol", "sinfo", "srun"):
        real = Path("/usr/bin") / tool
        (folder / tool).symlink_to(real)
    log = tmp_path / "squeue.calls"
    wrapper = folder / "squeue"
    wrapper.write_text(f'#!/bin/sh\necho "$(date +%s.%N) $*" >> {log}\nexec /usr/bin/squeue "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return folder


def squeue_calls(bin_folder: Path) -> list[tuple[float, str]]:
    path = bin_folder.parent / "squeue.calls"
    if not path.exists():
        return []
    calls = []
    for line in path.read_text().splitlines():
        stamp, _, args = line.partition(" ")
        calls.append((float(stamp), args))
    return calls


def _gone_or_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def no_process_left(marker: str) -> bool:
    """No process on this machine (every Slurm node runs here) mentions `marker`."""
    out = os.popen("ps -ww -eo pid=,args=").read()
    return not [line for line in out.splitlines() if marker in line and "ps -ww" not in line]


def test_sbatch_options_gres_and_extra_args(ws, slurm, tmp_path_factory, dist_src):
    if not slurm.gpus:
        pytest.skip(reason="the test Slurm has no (fake) GPUs: mknod is not permitted here")
    name = make_slurm_cluster(ws, tmp_path_factory, name="gpus", gpus_per_node=slurm.gpus,
                              sbatch_args=["--comment=from-batchai-test"])
    spec = bai.JobSpec(source_directory=str(dist_src), script="where.py", node_count=1,
                       max_wall_clock_seconds=3600)
    run = ws.experiment("slurm").submit(spec, cluster=name)
    run.wait_for_completion(show_output=False, timeout=120)
    job_id = str(run.get_details()["properties"]["slurm_job_id"])
    fields = job_fields(slurm, job_id)
    assert fields["TresPerNode"] == f"gres:gpu:{slurm.gpus}", fields
    assert fields["Comment"] == "from-batchai-test"
    assert fields["TimeLimit"] == "01:02:00" and fields["NumNodes"] == "1"
    assert fields["Requeue"] == "0"  # the engine, not Slurm, decides about requeue
    script = next(Path(ws.path, "slurm-root", "slurm").glob("*/job.sh")).read_text()
    for option in ("--nodes=1", "--ntasks-per-node=1", f"--gres=gpu:{slurm.gpus}",
                   "--partition=debug", "--time=0-01:02:00"):
        assert f"#SBATCH {option}\n" in script
    assert "srun" in script and "batchai_jupyter.node.agent" in script
    out = Path(ws.run_files_dir(run.id), "stdout.txt").read_text()
    assert f"gpus {slurm.gpus}" in out and "cuda 0,1" in out


def test_bad_cluster_settings_are_typed_errors(ws, slurm, tmp_path_factory):
    conf = str(slurm.conf)
    base = {"shared_root": str(ws.path / "sr"), "slurm_conf": conf, "max_nodes": 1}
    with pytest.raises(SpecError) as err:
        ws.create_cluster("s1", backend="slurm", partition="gpu", **base)
    assert err.value.field == "partition" and sorted(err.value.valid) == ["debug", "short"]
    with pytest.raises(SpecError) as err:
        ws.create_cluster("s2", backend="slurm", partition="short", **dict(base, max_nodes=2))
    assert err.value.field == "max_nodes" and "1 node(s) of partition 'short'" in str(err.value)
    with pytest.raises(SpecError) as err:
        ws.create_cluster("s3", backend="slurm", **dict(base, shared_root="relative/dir"))
    assert err.value.field == "shared_root"
    with pytest.raises(SpecError) as err:
        ws.create_cluster("s4", backend="slurm", min_nodes=1, **base)
    assert err.value.field == "min_nodes"
    with pytest.raises(SpecError) as err:
        ws.create_cluster("s5", backend="slurm", sbatch_args="--exclusive", **base)
    assert err.value.field == "sbatch_args"
    with pytest.raises(ClusterError) as err:
        ws.create_cluster("s6", backend="slurm", slurm_bin="/nonexistent/bin",
                          **{k: v for k, v in base.items()})
    assert "cannot run sinfo here" in str(err.value)
    assert [c.name for c in ws.clusters()] == ["local"]


def test_job_slurm_refuses_fails_the_run_with_sbatch_error(ws, slurm, tmp_path_factory, dist_src):
    name = make_slurm_cluster(ws, tmp_path_factory, name="toomany", gpus_per_node=8)
    spec = bai.JobSpec(source_directory=str(dist_src), script="where.py")
    run = ws.experiment("slurm").submit(spec, cluster=name)
    with pytest.raises(bai.RunFailed) as err:
        run.wait_for_completion(show_output=False, timeout=60)
    assert "sbatch refused the job" in str(err.value)
    assert run.get_details()["status"] == "Failed"


def test_status_is_one_batched_squeue_with_backoff(ws, slurm, tmp_path_factory, dist_src, counted_bin):
    name = make_slurm_cluster(ws, tmp_path_factory, slurm_bin=str(counted_bin),
                              poll_min_seconds=0.2, poll_max_seconds=3.2)
    exp = ws.experiment("slurm")
    runs = [exp.submit(bai.JobSpec(source_directory=str(dist_src), script="where.py",
                                   arguments=["8"]), cluster=name) for _ in range(2)]
    ids = [slurm_job_id(r) for r in runs]
    for run in runs:
        run.wait_for_completion(show_output=False, timeout=120)
        assert run.get_details()["status"] == "Completed"
    calls = [(t, a) for t, a in squeue_calls(counted_bin) if "--jobs=" in a]
    both = [t for t, a in calls if all(j in a.split("--jobs=")[1].split()[0].split(",") for j in ids)]
    assert both, calls                            # one call answers for both runs
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(calls)]
    span = calls[-1][0] - calls[0][0]
    assert len(calls) <= span / 0.2 + 2, gaps     # at most one call per poll_min_seconds, however many runs
    assert max(gaps) > 3 * 0.2, gaps              # and fewer while nothing changes (backoff)


def test_cancel_running_run_stops_the_slurm_job(ws, slurm, tmp_path_factory, dist_src):
    name = make_slurm_cluster(ws, tmp_path_factory)
    spec = bai.JobSpec(source_directory=str(dist_src), script="where.py", arguments=["120"],
                       node_count=2)
    run = ws.experiment("slurm").submit(spec, cluster=name)
    job_id = slurm_job_id(run)
    assert wait_until(lambda: run.get_details()["status"] == "Running", 60)
    written = Path(ws.path, "slurm-root", "nodes")
    assert wait_until(lambda: len(list(written.glob(f"*/runs/{run.id}/wd/outputs/node-*.txt"))) == 2, 60)
    run.cancel()
    assert wait_until(lambda: run.get_details()["status"] == "Canceled", 60), run.get_details()
    assert wait_until(lambda: job_fields(slurm, job_id)["JobState"] in ("COMPLETED", "CANCELLED"), 30)
    assert wait_until(lambda: no_process_left(run.id), 20)
    assert "outputs/node-0.txt" in run.get_file_names()  # outputs are collected on cancel too


def test_cancel_queued_run_scancels_its_pending_job(ws, slurm, tmp_path_factory, dist_src):
    name = make_slurm_cluster(ws, tmp_path_factory)
    exp = ws.experiment("slurm")
    hog = exp.submit(bai.JobSpec(source_directory=str(dist_src), script="where.py",
                                 arguments=["120"], node_count=2), cluster=name)
    assert wait_until(lambda: hog.get_details()["status"] == "Running", 60)
    waiting = exp.submit(bai.JobSpec(source_directory=str(dist_src), script="where.py"), cluster=name)
    job_id = slurm_job_id(waiting)
    assert wait_until(lambda: waiting.get_details()["properties"].get("slurm_state") == "PENDING", 30)
    assert waiting.get_details()["status"] == "Queued"
    waiting.cancel()
    assert wait_until(lambda: job_fields(slurm, job_id)["JobState"] == "CANCELLED", 30)
    assert waiting.get_details()["status"] == "Canceled"
    hog.cancel()
    assert wait_until(lambda: hog.get_details()["status"] == "Canceled", 60)


def test_job_killed_by_slurm_fails_the_run_with_the_cause(ws, slurm, tmp_path_factory, dist_src):
    name = make_slurm_cluster(ws, tmp_path_factory)
    spec = bai.JobSpec(source_directory=str(dist_src), script="where.py", arguments=["120"],
                       node_count=2)
    run = ws.experiment("slurm").submit(spec, cluster=name)
    job_id = slurm_job_id(run)
    assert wait_until(lambda: run.get_details()["status"] == "Running", 60)
    slurm.run("scancel", job_id)  # what an admin, a preemption or a node failure does
    with pytest.raises(bai.RunFailed) as err:
        run.wait_for_completion(show_output=False, timeout=60)
    assert f"Slurm job {job_id} ended CANCELLED" in str(err.value)
    assert wait_until(lambda: no_process_left(run.id), 20)


def test_restarted_engine_finds_its_slurm_jobs(ws, slurm, tmp_path_factory, dist_src):
    from batchai_jupyter.engine.control import ensure_engine, stop_engine
    name = make_slurm_cluster(ws, tmp_path_factory)
    exp = ws.experiment("slurm")
    first = exp.submit(bai.JobSpec(source_directory=str(dist_src), script="where.py",
                                   arguments=["5"], node_count=2), cluster=name)
    assert wait_until(lambda: first.get_details()["status"] == "Running", 60)
    second = exp.submit(bai.JobSpec(source_directory=str(dist_src), script="where.py"), cluster=name)
    second_job = slurm_job_id(second)
    assert stop_engine(ws.path)
    ensure_engine(ws.path)
    for run in (first, second):
        run.wait_for_completion(show_output=False, timeout=120)
        assert run.get_details()["status"] == "Completed"
    assert str(second.get_details()["properties"]["slurm_job_id"]) == second_job  # not submitted twice
    assert len(list(Path(ws.path, "slurm-root", "slurm").glob("*/job.sh"))) == 2


@pytest.fixture
def login_sshd(tmp_path: Path):
    """A real OpenSSH sshd on loopback standing in for the cluster's login host."""
    import shutil
    import socket
    import subprocess
    if not Path("/usr/sbin/sshd").exists() or shutil.which("ssh-keygen") is None:
        pytest.skip(reason="OpenSSH sshd is not installed (apt-get install openssh-server)")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    d = tmp_path / "login"
    d.mkdir()
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    shutil.copy(d / "client.pub", d / "authorized_keys")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile {d}/sshd.pid\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\n")
    host_key = (d / "host.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")],
                            stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "wb"))  # noqa: SIM115

    def up() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    try:
        if not wait_until(up, 10):
            pytest.skip(reason=f"sshd did not start: {(d / 'sshd.log').read_text()[-300:]}")
        yield {"login_host": f"127.0.0.1:{port}", "user": "root", "key_file": str(d / "client"),
               "known_hosts": str(d / "known_hosts")}
    finally:
        proc.terminate()
        proc.wait(10)


def test_slurm_commands_through_a_login_host(ws, slurm, tmp_path_factory, dist_src, login_sshd, tmp_path):
    name = make_slurm_cluster(ws, tmp_path_factory, name="viaLogin", **login_sshd)
    spec = bai.JobSpec(source_directory=str(dist_src), script="where.py", node_count=2)
    run = ws.experiment("slurm").submit(spec, cluster=name)
    run.wait_for_completion(show_output=False, timeout=120)
    assert run.get_details()["status"] == "Completed"
    job_id = str(run.get_details()["properties"]["slurm_job_id"])
    assert job_fields(slurm, job_id)["NumNodes"] == "2"
    assert sorted(run.get_metrics()["node_seen"]) == [0, 1]
    # a login host whose key is not in known_hosts is refused, naming the host
    other = tmp_path / "other_known_hosts"
    other.write_text("")
    with pytest.raises(ClusterError) as err:
        make_slurm_cluster(ws, tmp_path_factory, name="untrusted", **dict(login_sshd, known_hosts=str(other)))
    assert "127.0.0.1" in str(err.value) and "SHA256:" in str(err.value)


def test_lost_agent_requeues_the_run_as_a_new_slurm_job(ws, slurm, tmp_path_factory, dist_src,
                                                        monkeypatch):
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "5")
    name = make_slurm_cluster(ws, tmp_path_factory)
    (dist_src / "lost.py").write_text(textwrap.dedent("""
        import os, time
        first_attempt = os.path.basename(os.path.dirname(os.getcwd())) == os.environ["BATCHAI_RUN_ID"]
        print("first attempt", first_attempt, flush=True)
        time.sleep(300 if first_attempt else 1)
    """))
    spec = bai.JobSpec(source_directory=str(dist_src), script="lost.py", node_count=2)
    run = ws.experiment("slurm").submit(spec, cluster=name)
    first_job = slurm_job_id(run)
    agent = f"nodes/n2/runs/{run.id}/run.json"

    def agent_pid() -> int | None:
        out = os.popen("ps -ww -eo pid=,args=").read().splitlines()
        return next((int(line.split()[0]) for line in out
                     if "batchai_jupyter.node.agent" in line and agent in line and "/bin/sh" not in line), None)
    assert wait_until(lambda: agent_pid() is not None and Path(
        ws.path, "slurm-root", "nodes", "n2", "runs", run.id, "pids.json").exists(), 60)
    import json
    orphan = json.loads(Path(ws.path, "slurm-root", "nodes", "n2", "runs", run.id, "pids.json").read_text())
    os.kill(agent_pid(), 9)  # the agent on n2 dies: its job process is orphaned, its heartbeat stops
    run.wait_for_completion(show_output=False, timeout=120)
    details = run.get_details()
    assert details["status"] == "Completed"
    assert details["properties"]["attempt"] == 1
    assert str(details["properties"]["slurm_job_id"]) != first_job
    messages = [e["message"] or "" for e in ws.history.events(run.id)]
    assert any("requeued" in m and "node n2 lost" in m for m in messages), messages
    assert job_fields(slurm, first_job)["JobState"] in ("CANCELLED", "COMPLETED", "FAILED")
    assert wait_until(lambda: no_process_left(run.id), 20)
    for pid in orphan.values():  # the orphan of the dead agent was killed on its node too
        assert wait_until(lambda pid=pid: _gone_or_zombie(pid), 10), pid


def test_every_queued_run_waits_in_slurms_own_queue(ws, slurm, tmp_path_factory, dist_src):
    name = make_slurm_cluster(ws, tmp_path_factory)
    exp = ws.experiment("slurm")
    spec = {"source_directory": str(dist_src), "script": "where.py", "node_count": 2}
    first = exp.submit(bai.JobSpec(arguments=["6"], **spec), cluster=name)
    second = exp.submit(bai.JobSpec(**spec), cluster=name)
    low = exp.submit(bai.JobSpec(source_directory=str(dist_src), script="where.py", priority="low"),
                     cluster=name)
    ids = [slurm_job_id(r) for r in (first, second, low)]
    assert first.get_details()["status"] != "Completed"  # all submitted before the first one ended
    assert len(set(ids)) == 3
    assert job_fields(slurm, ids[2])["Nice"] == "100"
    for run in (first, second, low):
        run.wait_for_completion(show_output=False, timeout=120)
        assert run.get_details()["status"] == "Completed"


def test_cli_creates_a_slurm_cluster_and_waits_for_a_job(ws, slurm, tmp_path):
    import json
    import subprocess
    slurm.cancel_all()
    env = dict(os.environ, BATCHAI_WORKSPACE=str(ws.path), SLURM_CONF=str(slurm.conf))

    def batchai(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "batchai_jupyter.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
    made = batchai("cluster", "create", "-n", "hpc", "--backend", "slurm", "--partition", "debug",
                   "--max-nodes", "2", "--shared-root", str(ws.path / "slurm-root"), "--python", sys.executable)
    assert made.returncode == 0, made.stderr
    bad = batchai("cluster", "create", "-n", "hpc2", "--backend", "slurm", "--partition", "nope",
                  "--shared-root", str(ws.path / "slurm-root"))
    assert bad.returncode != 0 and "partition" in bad.stderr and "debug" in bad.stderr
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "train.py").write_text("import os, sys\nprint('on', os.environ['SLURMD_NODENAME'])\nsys.exit(5)\n")
    (folder / "job.json").write_text(json.dumps({"properties": {"nodeCount": 2, "customToolkitSettings": {
        "commandLine": "python train.py"}}}))
    created = batchai("job", "create", "-c", "hpc", "-f", str(folder / "job.json"), "-o", "json")
    assert created.returncode == 0, created.stderr
    wait = batchai("job", "wait", "-j", json.loads(created.stdout)["name"])
    assert wait.returncode == 5, (wait.stdout, wait.stderr)  # the job's own exit code, through Slurm


def test_run_canceled_while_no_engine_runs_has_its_pending_job_cancelled(ws, slurm, tmp_path_factory,
                                                                         dist_src):
    from batchai_jupyter.engine.control import stop_engine
    name = make_slurm_cluster(ws, tmp_path_factory)
    exp = ws.experiment("slurm")
    hog = exp.submit(bai.JobSpec(source_directory=str(dist_src), script="where.py", arguments=["120"],
                                 node_count=2), cluster=name)
    waiting = exp.submit(bai.JobSpec(source_directory=str(dist_src), script="where.py"), cluster=name)
    job_id = slurm_job_id(waiting)
    assert stop_engine(ws.path)
    assert job_fields(slurm, job_id)["JobState"] == "PENDING"
    waiting.cancel()  # a new engine applies it, then finds the job no run needs any more
    assert wait_until(lambda: job_fields(slurm, job_id)["JobState"] == "CANCELLED", 30)
    assert waiting.get_details()["status"] == "Canceled"
    assert wait_until(lambda: hog.get_details()["status"] == "Running", 60)  # the other run goes on
    hog.cancel()
    assert wait_until(lambda: hog.get_details()["status"] == "Canceled", 60)


def test_job_over_the_partition_time_limit_fails_instead_of_pending_forever(ws, slurm, tmp_path_factory,
                                                                            dist_src):
    name = make_slurm_cluster(ws, tmp_path_factory, name="short", partition="short", max_nodes=1,
                              never_starts_seconds=1)
    too_long = ws.experiment("slurm").submit(bai.JobSpec(source_directory=str(dist_src), script="where.py"),
                                             cluster=name)  # the default wall clock: 7 days
    with pytest.raises(bai.RunFailed) as err:
        too_long.wait_for_completion(show_output=False, timeout=60)
    assert "PartitionTimeLimit" in str(err.value) and "max_wall_clock_seconds" in str(err.value)
    job_id = str(too_long.get_details()["properties"]["slurm_job_id"])
    assert wait_until(lambda: job_fields(slurm, job_id)["JobState"] == "CANCELLED", 30)
    fits = ws.experiment("slurm").submit(bai.JobSpec(source_directory=str(dist_src), script="where.py",
                                                     max_wall_clock_seconds=600), cluster=name)
    fits.wait_for_completion(show_output=False, timeout=60)
    assert "slurm n1" in Path(ws.run_files_dir(fits.id), "stdout.txt").read_text()


def test_agent_that_cannot_start_on_the_nodes_fails_the_run_with_its_reason(ws, slurm, tmp_path_factory,
                                                                            dist_src):
    name = make_slurm_cluster(ws, tmp_path_factory, name="nopython", python="/nonexistent/bin/python3")
    run = ws.experiment("slurm").submit(bai.JobSpec(source_directory=str(dist_src), script="where.py",
                                                    node_count=2), cluster=name)
    with pytest.raises(bai.RunFailed) as err:
        run.wait_for_completion(show_output=False, timeout=60)
    text = str(err.value)
    assert "ended FAILED" in text and "/nonexistent/bin/python3" in text, text


def test_two_node_ddp_allreduce_on_slurm(ws, slurm, tmp_path_factory, tmp_path):
    pytest.importorskip("torch")
    name = make_slurm_cluster(ws, tmp_path_factory)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "ddp.py").write_text(textwrap.dedent("""
        import os, torch, torch.distributed as dist
        dist.init_process_group("gloo")
        t = torch.tensor([float(dist.get_rank() + 1)])
        dist.all_reduce(t)
        print("rank", dist.get_rank(), "of", dist.get_world_size(), "sum", t.item(),
              "on", os.environ["SLURMD_NODENAME"], flush=True)
        dist.destroy_process_group()
    """))
    spec = bai.JobSpec(source_directory=tmp_path / "d", script="ddp.py", node_count=2,
                       distribution="pytorch", environment_variables={"GLOO_SOCKET_IFNAME": "lo"})
    run = ws.experiment("slurm").submit(spec, cluster=name)
    assert run.wait_for_completion(show_output=False, raise_on_error=False, timeout=120)["status"] == "Completed"
    lines = [list(run.stream(f"stdout-{n}-0.txt", follow=False))[-1] for n in (0, 1)]
    assert lines == ["rank 0 of 2 sum 3.0 on n1", "rank 1 of 2 sum 3.0 on n2"]


def test_deleting_the_cluster_cancels_its_slurm_jobs(ws, slurm, tmp_path_factory, dist_src):
    name = make_slurm_cluster(ws, tmp_path_factory)
    exp = ws.experiment("slurm")
    hog = exp.submit(bai.JobSpec(source_directory=str(dist_src), script="where.py", arguments=["120"],
                                 node_count=2), cluster=name)
    waiting = exp.submit(bai.JobSpec(source_directory=str(dist_src), script="where.py"), cluster=name)
    ids = [slurm_job_id(hog), slurm_job_id(waiting)]
    assert wait_until(lambda: hog.get_details()["status"] == "Running", 60)
    ws.cluster(name).delete(force=True)
    assert wait_until(lambda: name not in [c["name"] for c in ws.history.cluster_rows()], 60)
    for job_id in ids:
        assert wait_until(lambda job_id=job_id: job_fields(slurm, job_id)["JobState"] in
                          ("CANCELLED", "COMPLETED"), 30)
    assert [r.get_details()["status"] for r in (hog, waiting)] == ["Canceled", "Canceled"]
    assert wait_until(lambda: no_process_left(hog.id), 20)


def test_batch_script_and_time_limits_without_a_cluster(tmp_path):
    """The script sbatch gets, checked as text (runs even where Slurm is not installed)."""
    from batchai_jupyter.compute.slurm.backend import SlurmCompute
    from batchai_jupyter.compute.slurm.script import slurm_time
    assert [slurm_time(s) for s in (1, 60, 61, 3600 + 120, 7 * 86400 + 120)] == \
        ["0-00:01:00", "0-00:01:00", "0-00:02:00", "0-01:02:00", "7-00:02:00"]
    compute = SlurmCompute({"name": "hpc", "shared_root": "/shared/bai", "partition": "gpu",
                            "gpus_per_node": 4, "python": "/opt/venv/bin/python",
                            "sbatch_args": ["--account=proj"], "slurm_bin": "/opt/slurm/bin"},
                           tmp_path, None)
    run = {"id": "exp_1_ab", "properties": {"attempt": 2},
           "spec": {"max_wall_clock_seconds": 3600, "priority": "low"}}
    script = compute.batch_script(run, "exp_1_ab.2", 3)
    head = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert head == ["#SBATCH --job-name=" + compute.prefix + "exp_1_ab.2", "#SBATCH --nodes=3",
                    "#SBATCH --ntasks-per-node=1", "#SBATCH --time=0-01:02:00", "#SBATCH --partition=gpu",
                    "#SBATCH --gres=gpu:4", "#SBATCH --nice=100",
                    "#SBATCH --output=/shared/bai/slurm/exp_1_ab.2/slurm-%j.out",
                    "#SBATCH --chdir=/shared/bai/slurm/exp_1_ab.2", "#SBATCH --no-requeue",
                    "#SBATCH --account=proj"]
    assert "/opt/slurm/bin/srun --nodes=3 --ntasks-per-node=1" in script
    assert "/opt/venv/bin/python -m batchai_jupyter.node.agent" in script
    assert '/shared/bai/nodes/"$SLURMD_NODENAME"/runs/exp_1_ab.2/run.json' in script


def test_snapshot_objects_go_once_into_the_shared_root(ws, slurm, tmp_path_factory, dist_src):
    name = make_slurm_cluster(ws, tmp_path_factory)
    spec = bai.JobSpec(source_directory=str(dist_src), script="where.py", node_count=2)
    first = ws.experiment("slurm").submit(spec, cluster=name)
    first.wait_for_completion(show_output=False, timeout=120)
    objects = Path(ws.path, "slurm-root", "objects")
    before = {p: p.stat().st_mtime_ns for p in objects.rglob("*") if p.is_file()}
    assert len(before) == len(list(dist_src.iterdir()))  # one copy for both nodes
    second = ws.experiment("slurm").submit(spec, cluster=name)
    second.wait_for_completion(show_output=False, timeout=120)
    assert {p: p.stat().st_mtime_ns for p in objects.rglob("*") if p.is_file()} == before

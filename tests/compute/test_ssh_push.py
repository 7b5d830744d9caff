"""SSH hosts push their runs' files over one channel per host (compute/ssh/push.py, node/push.py).

Real sshd hosts in network namespaces (ssh_env.py). Each job waits for a go-file the test
creates once the condition under test holds (the channel synced, the watcher or the engine
killed and back, a host down), so no assertion depends on timing.
"""
from __future__ import annotations

import os
import re
import signal
import threading
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.engine.control import engine_info, ensure_engine, forget, is_running
from batchai_jupyter.layout import WorkspacePaths
from tests.compute.ssh_env import Host, SSHHosts, make_ssh_cluster
from tests.support import wait_until

pytestmark = pytest.mark.timeout(240)

# prints `first` lines, waits for argv[2], prints lines up to `total` (argv: go-file, first, total)
JOB = """
import os, sys, time
go, first, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(total):
    if i == first:
        while not os.path.exists(go):
            time.sleep(0.02)
    print(f"line {i}", flush=True)
    time.sleep(0.005)
"""


def _engine_log(ws: bai.Workspace) -> str:
    try:
        return WorkspacePaths.of(ws.path).engine_log.read_text()
    except FileNotFoundError:
        return ""


def _synced_count(ws: bai.Workspace, run: bai.Run) -> int:
    return len(re.findall(rf"run folder {re.escape(run.id)}: files pushed from host", _engine_log(ws)))


def _submit(ws: bai.Workspace, cluster: str, src: Path, go: Path, first: int, total: int) -> bai.Run:
    return ws.experiment("push").submit(JobSpec(source_directory=src, script="job.py",
                                                arguments=[str(go), str(first), str(total)]), cluster=cluster)


def _follow(run: bai.Run, into: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(run.stream()), daemon=True)
    thread.start()
    return thread


def _watchers(hosts: SSHHosts, host: Host) -> list[int]:
    out = []
    for pid in hosts.pids(host):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"batchai_jupyter.node.push" in cmdline:
            out.append(pid)
    return out


@pytest.fixture
def job_src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "job.py").write_text(JOB)
    return src


def test_lines_arrive_through_the_push_not_sftp(ws: bai.Workspace, ssh_hosts: SSHHosts, job_src: Path,
                                                tmp_path: Path) -> None:
    make_ssh_cluster(ws, ssh_hosts, name="push", count=1)
    go = tmp_path / "go"
    run = _submit(ws, "push", job_src, go, 0, 40)
    assert wait_until(lambda: _synced_count(ws, run) >= 1, 90), _engine_log(ws)[-2000:]
    go.touch()  # the job prints only now: every line is new to the channel
    lines: list[str] = []
    _follow(run, lines).join(timeout=90)
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    assert lines == [f"line {i}" for i in range(40)]
    counted = re.search(rf"run folder {re.escape(run.id)} on host \S+: (\d+) log bytes pushed, "
                        rf"(\d+) read over SFTP", _engine_log(ws))
    assert counted is not None, _engine_log(ws)[-2000:]
    printed = sum(len(f"line {i}\n") for i in range(40))
    assert (int(counted.group(1)), int(counted.group(2))) == (printed, 0)


def test_a_killed_watcher_loses_and_doubles_no_line(ws: bai.Workspace, ssh_hosts: SSHHosts, job_src: Path,
                                                    tmp_path: Path) -> None:
    host = ssh_hosts.hosts[0]
    make_ssh_cluster(ws, ssh_hosts, name="kill", count=1)
    go = tmp_path / "go"
    run = _submit(ws, "kill", job_src, go, 150, 400)
    lines: list[str] = []
    follower = _follow(run, lines)
    assert wait_until(lambda: len(lines) >= 150 and _synced_count(ws, run) >= 1, 90), lines[-3:]
    watchers = _watchers(ssh_hosts, host)
    assert watchers  # the channel's watcher runs on the host
    for pid in watchers:
        os.kill(pid, signal.SIGKILL)
    # the engine starts a new watcher, from the bytes it holds, before the job prints the rest
    assert wait_until(lambda: _synced_count(ws, run) >= 2, 90), _engine_log(ws)[-2000:]
    go.touch()
    follower.join(timeout=90)
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    assert lines == [f"line {i}" for i in range(400)]


def test_a_dead_host_does_not_hold_up_another_hosts_run(ws: bai.Workspace, ssh_hosts: SSHHosts,
                                                        job_src: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "600")  # the cut-off run stays unreachable, not lost
    dead = ssh_hosts.hosts[1]
    make_ssh_cluster(ws, ssh_hosts, name="dying", count=1, first=1)
    make_ssh_cluster(ws, ssh_hosts, name="living", count=1, first=0)
    never = tmp_path / "never"
    stuck = _submit(ws, "dying", job_src, never, 1, 2)  # prints one line, then waits
    stuck_lines: list[str] = []
    _follow(stuck, stuck_lines)
    assert wait_until(lambda: stuck_lines == ["line 0"], 90), stuck_lines
    ssh_hosts.set_link(dead, up=False)
    try:
        go = tmp_path / "go"
        go.touch()
        other = _submit(ws, "living", job_src, go, 0, 30)
        lines: list[str] = []
        _follow(other, lines).join(timeout=120)
        assert other.wait_for_completion(timeout=120)["status"] == "Completed"
        assert lines == [f"line {i}" for i in range(30)]
        # all of it happened while the other host was still cut off and its run not over
        assert stuck.get_status() not in ("Completed", "Failed", "Canceled")
        assert stuck_lines == ["line 0"]
    finally:
        ssh_hosts.set_link(dead, up=True)
        never.touch()
        stuck.cancel()
    stuck.wait_for_completion(timeout=120, raise_on_error=False)


def test_an_engine_killed_mid_run_resumes_the_push_from_its_copies(ws: bai.Workspace, ssh_hosts: SSHHosts,
                                                                   job_src: Path, tmp_path: Path) -> None:
    make_ssh_cluster(ws, ssh_hosts, name="restart", count=1)
    go = tmp_path / "go"
    run = _submit(ws, "restart", job_src, go, 120, 300)
    lines: list[str] = []
    follower = _follow(run, lines)
    assert wait_until(lambda: len(lines) >= 120 and _synced_count(ws, run) >= 1, 90), lines[-3:]
    os.kill(int(engine_info(ws.path)["pid"]), signal.SIGKILL)
    assert wait_until(lambda: not is_running(ws.path), 30)
    forget(ws.path)
    ensure_engine(ws.path)  # the next engine picks the run up and follows it again
    assert wait_until(lambda: _synced_count(ws, run) >= 2, 90), _engine_log(ws)[-2000:]
    go.touch()
    follower.join(timeout=90)
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    assert lines == [f"line {i}" for i in range(300)]


LOGS_JOB = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
os.makedirs("logs", exist_ok=True)
with open("logs/progress.txt", "w") as fh:
    for i in range(30):
        print(f"step {i}", file=fh, flush=True)
        time.sleep(0.05)
"""


def test_logs_folder_files_are_pushed_too(ws: bai.Workspace, ssh_hosts: SSHHosts, tmp_path: Path) -> None:
    src = tmp_path / "logs-src"
    src.mkdir()
    (src / "job.py").write_text(LOGS_JOB)
    make_ssh_cluster(ws, ssh_hosts, name="logs", count=1)
    go = tmp_path / "go"
    run = ws.experiment("push").submit(JobSpec(source_directory=src, script="job.py", arguments=[str(go)]),
                                       cluster="logs")
    assert wait_until(lambda: _synced_count(ws, run) >= 1, 90), _engine_log(ws)[-2000:]
    go.touch()
    assert run.wait_for_completion(timeout=90)["status"] == "Completed"
    assert list(run.stream("logs/progress.txt", follow=False)) == [f"step {i}" for i in range(30)]
    counted = re.search(rf"run folder {re.escape(run.id)} on host \S+: (\d+) log bytes pushed, "
                        rf"(\d+) read over SFTP", _engine_log(ws))
    assert counted is not None and int(counted.group(1)) > 0 and int(counted.group(2)) == 0, counted

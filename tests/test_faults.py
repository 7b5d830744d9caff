"""Faults with real processes: the client dies, the engine is killed, an agent is killed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.engine.control import engine_info, forget, is_running
from tests.support import process_gone, wait_until


def _counter_job(folder: Path, gate: Path, lines: int = 40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "count.py").write_text(textwrap.dedent(f"""
        import os, time
        from batchai_jupyter import Run
        run = Run.get_context()
        with open(os.path.join(os.environ["AZ_BATCHAI_SHARED_JOB_TEMP"], "starts"), "a") as fh:
            fh.write("start\\n")
        for i in range({lines}):
            print(f"line {{i}}", flush=True)
            run.log("i", i)
            if i == 5:
                while not os.path.exists({str(gate)!r}):
                    time.sleep(0.02)
            time.sleep(0.02)
    """))
    return folder



def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: process_gone(pid), 10)


def _start_and_kill_agent(ws: bai.Workspace, run: bai.Run, cluster: str = "local") -> tuple[str, list[int]]:
    """Wait for six lines of the job, SIGKILL its agent; returns its node and the job's pids."""
    stream = run.stream()
    [next(stream) for _ in range(6)]
    node = run.get_details()["nodes"][0]
    run_dir = Path(ws.path, "clusters", cluster, "nodes", node, "runs", run.id)
    job_pids = list(json.loads((run_dir / "pids.json").read_text()).values())
    _kill(int((run_dir / "agent.started").read_text()))
    return node, job_pids


def test_engine_killed_mid_run_loses_nothing_and_launches_once(ws: bai.Workspace, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    src = _counter_job(tmp_path / "src", gate)
    # keep_node_files: the shared job folder holding `starts` outlives the run (else it is
    # removed once the run has ended, and the count below would race that clean-up)
    run = ws.experiment("e").submit(JobSpec(source_directory=src, script="count.py", keep_node_files=True))
    stream = run.stream()
    assert [next(stream) for _ in range(6)] == [f"line {i}" for i in range(6)]
    pid = engine_info(ws.path)["pid"]
    _kill(pid)
    assert not is_running(ws.path)
    gate.write_text("go")          # the job goes on without an engine
    time.sleep(0.5)
    forget(ws.path)
    rest = list(stream)            # this client call brings an engine back
    assert engine_info(ws.path)["pid"] != pid
    assert [f"line {i}" for i in range(6, 40)] == rest
    assert run.wait_for_completion()["status"] == "Completed"
    assert run.get_metrics()["i"] == list(range(40))    # no metric lost or doubled
    starts = list(Path(ws.path, "clusters", "local", "shared", "jobs").rglob("starts"))
    assert [p.read_text() for p in starts] == ["start\n"]  # launched exactly once


def test_a_second_agent_for_the_same_run_exits_at_once(ws: bai.Workspace, tmp_path: Path) -> None:
    """Launch is idempotent per run and node: a repeated start never runs the job twice."""
    gate = tmp_path / "gate"
    gate.write_text("go")
    src = _counter_job(tmp_path / "src", gate, lines=8)
    run = ws.experiment("e").submit(JobSpec(source_directory=src, script="count.py", keep_node_files=True))
    assert run.wait_for_completion()["status"] == "Completed"
    node_root = ws.paths.node_dir("local", run.get_details()["nodes"][0])
    run_dir = node_root / "runs" / run.id
    assert (run_dir / "agent.started").exists()
    again = subprocess.run([sys.executable, "-m", "batchai_jupyter.node.agent", str(run_dir / "run.json")],
                           capture_output=True, timeout=30, check=False)
    assert again.returncode == 0  # a second agent for the same run exits at once
    starts = list(Path(ws.path, "clusters", "local", "shared", "jobs").rglob("starts"))
    assert [p.read_text() for p in starts] == ["start\n"]


def test_client_killed_run_goes_on(ws: bai.Workspace, src: Path) -> None:
    code = textwrap.dedent(f"""
        import os, signal, batchai_jupyter as bai
        ws = bai.Workspace({str(ws.path)!r})
        run = ws.experiment("k").submit(bai.JobSpec(source_directory={str(src)!r}, script="train.py",
                                                    arguments=["20"]))
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == -signal.SIGKILL
    run = ws.get_run(proc.stdout.strip())
    assert run.wait_for_completion()["status"] == "Completed"
    assert len(list(run.stream())) == 20


def test_killed_agent_makes_the_node_unusable_and_fails_the_run(ws: bai.Workspace, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "2")
    ws.create_cluster("one", backend="local", max_nodes=1, node_deallocation_option="terminate")
    src = _counter_job(tmp_path / "src", tmp_path / "never")
    run = ws.experiment("lost").submit(JobSpec(source_directory=src, script="count.py"), cluster="one")
    _node, job_pids = _start_and_kill_agent(ws, run, "one")
    details = run.wait_for_completion(raise_on_error=False, timeout=60)
    assert details["status"] == "Failed" and "no heartbeat" in details["error"]["message"]
    [node] = ws.cluster("one").nodes()
    assert node.state == "unusable" and "no heartbeat" in node.error
    for pid in job_pids:  # the job's processes did not outlive their agent
        assert wait_until(lambda pid=pid: process_gone(pid), 10)


def test_killed_agent_requeues_the_run_by_default(ws: bai.Workspace, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "2")
    gate = tmp_path / "gate"
    src = _counter_job(tmp_path / "src", gate)
    run = ws.experiment("rq").submit(JobSpec(source_directory=src, script="count.py"))
    node, _pids = _start_and_kill_agent(ws, run)
    assert wait_until(lambda: run.get_details()["properties"].get("attempt") == 1, 30)
    gate.write_text("go")
    details = run.wait_for_completion(timeout=60)
    assert details["status"] == "Completed"
    assert any(e["message"] and "requeued" in e["message"] for e in details["events"])
    assert list(run.stream()) == [f"line {i}" for i in range(40)]
    first_attempt = Path(ws.path, "runs", run.id, "attempt-0", "stdout.txt").read_text().splitlines()
    assert first_attempt[:6] == [f"line {i}" for i in range(6)]
    states = {n.id: n.state for n in ws.cluster("local").nodes()}
    assert states[node] == "unusable"

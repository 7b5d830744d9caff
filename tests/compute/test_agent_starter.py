"""The local cluster's warm agent starter (node/zygote.py, compute/local/starter.py) with real
processes: the agents it forks are detached as a fresh `setsid python -m ...node.agent` would
be, a starter that died is replaced, and the starter ends with its engine while the agents it
started go on."""
from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.compute.local.starter import ZYGOTE_MODULE, is_agent_of
from batchai_jupyter.engine.control import engine_info, forget
from tests.support import process_gone, wait_until

pytestmark = pytest.mark.timeout(180)


def _proc(pid: int) -> tuple[int, int, list[str]]:
    """(parent pid, session id, argv) of a live process."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return int(stat[1]), int(stat[3]), [a for a in argv if a]


def _starters(root: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if ZYGOTE_MODULE.encode() in argv and str(root).encode() in argv:
                found.append(int(entry.name))
    # the agents it forked carry the same command line; the starter is the engine's child
    return [pid for pid in found if _is_engine(_proc(pid)[0])]


def _is_engine(pid: int) -> bool:
    try:
        return b"batchai_jupyter.engine" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _gated(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "gated.py").write_text(textwrap.dedent("""
        import os, time
        gate = os.path.join(os.environ["AZ_BATCHAI_JOB_TEMP"], "gate")
        print("waiting", flush=True)
        while not os.path.exists(gate):
            time.sleep(0.05)
        print("through", flush=True)
    """))
    return src


def _node_run(ws: bai.Workspace, run: bai.Run) -> Path:
    node = run.get_details()["nodes"][0]
    return next(Path(ws.path, "clusters", "local", "nodes", node, "runs").glob(f"{run.id}*"))


def test_agents_are_detached_and_outlive_their_starter_and_engine(ws: bai.Workspace, tmp_path: Path) -> None:
    run = ws.experiment("z").submit(JobSpec(source_directory=_gated(tmp_path), script="gated.py"))
    stream = run.stream()
    assert next(stream) == "waiting"
    folder = _node_run(ws, run)
    agent = int((folder / "agent.started").read_text())
    engine = engine_info(ws.path)["pid"]
    parent, session, argv = _proc(agent)
    assert session == agent                 # its own session, as setsid gives
    assert parent != engine                 # re-parented at once, not a child of the engine
    assert ZYGOTE_MODULE in argv            # forked by the warm starter, not a fresh interpreter
    assert is_agent_of(agent, str(folder / "run.json"))
    starters = _starters(Path(ws.path, "clusters", "local"))
    assert len(starters) == 1 and _proc(starters[0])[0] == engine
    os.kill(engine, signal.SIGKILL)          # the engine dies: its starter ends, the agent goes on
    assert wait_until(lambda: process_gone(engine) and process_gone(starters[0]), 15)
    assert not process_gone(agent)
    (folder / "temp" / "gate").write_text("go")
    forget(ws.path)
    assert list(stream) == ["through"]       # a client call brings an engine back
    assert run.wait_for_completion()["status"] == "Completed"


def test_a_starter_that_died_is_replaced(ws: bai.Workspace, tmp_path: Path) -> None:
    exp = ws.experiment("z")
    src = tmp_path / "src"
    src.mkdir()
    assert exp.submit(JobSpec(source_directory=src, command="echo one")).wait_for_completion()["status"] == "Completed"
    root = Path(ws.path, "clusters", "local")
    first = _starters(root)
    assert len(first) == 1
    os.kill(first[0], signal.SIGKILL)
    assert wait_until(lambda: process_gone(first[0]), 10)
    run = exp.submit(JobSpec(source_directory=src, command="echo two"))
    assert run.wait_for_completion()["status"] == "Completed"
    assert list(run.stream()) == ["two"]
    again = _starters(root)
    assert len(again) == 1 and again != first


def test_is_agent_of_refuses_another_process(tmp_path: Path) -> None:
    assert not is_agent_of(os.getpid(), str(tmp_path / "runs" / "r" / "run.json"))
    assert not is_agent_of(2 ** 22 + 7, str(tmp_path / "run.json"))  # no such pid

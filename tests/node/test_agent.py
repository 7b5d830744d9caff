"""The agent: a manifest it cannot run fails the run; an mpi node waits for the ranks on it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from batchai_jupyter.node import agent
from batchai_jupyter.node.manifest import MANIFEST_VERSION
from batchai_jupyter.node.paths import RunPaths

from .helpers import make_manifest


def test_a_newer_manifest_fails_the_run_once_with_the_reason(tmp_path: Path) -> None:
    paths = RunPaths(str(tmp_path), "r1")
    Path(paths.run_dir).mkdir(parents=True)
    raw = json.loads(make_manifest(node_root=str(tmp_path)).to_json())
    raw["version"] = MANIFEST_VERSION + 1
    Path(paths.manifest).write_text(json.dumps(raw))
    assert agent.main(["agent", paths.manifest]) == 1
    status = json.loads(Path(paths.status).read_text())
    assert status["error"]["phase"] == "preparing" and status["exit_codes"] == {}
    assert f"ManifestError: run manifest version {MANIFEST_VERSION + 1} is newer" in status["error"]["message"]
    Path(paths.status).unlink()
    assert agent.main(["agent", paths.manifest]) == 1  # a second agent: nothing written again
    assert not Path(paths.status).exists()


# -- a non-master node of an mpi run waits for the ranks node 0's mpirun starts on it -----------
def _mpi_agent(tmp_path: Path, **spec: object) -> agent.Agent:
    m = make_manifest(root=str(tmp_path), node_index=1,
                      spec={"distribution": "mpi", "process_count_per_node": 1, **spec})
    os.makedirs(m.paths.run_dir)
    os.makedirs(m.paths_of(m.nodes[0]).run_dir)
    a = agent.Agent(m)
    a.grace = 1.0
    return a


def _rank(paths: RunPaths, rank: str, seconds: float) -> subprocess.Popen[bytes]:
    """What mpi_rank does: hold the marker, then become the job (here: sleep)."""
    code = ("import os, sys; from batchai_jupyter.node.mpi_rank import hold_marker; "
            "from batchai_jupyter.node.paths import RunPaths; "
            f"hold_marker(RunPaths({paths.node_root!r}, {paths.key!r}), {rank!r}); "
            f"os.execvp('sleep', ['sleep', '{seconds}'])")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 20
    while not os.path.exists(os.path.join(paths.ranks, rank)) and time.time() < deadline:
        time.sleep(0.02)
    return proc


def test_rank_markers_tell_running_ranks_from_ended_ones(tmp_path: Path) -> None:
    paths = RunPaths(str(tmp_path), "r1")
    assert agent.rank_markers(paths.ranks) == ([], [])
    proc = _rank(paths, "3", 30)
    assert agent.rank_markers(paths.ranks) == (["3"], [proc.pid])  # held through exec
    proc.kill()
    proc.wait()
    assert agent.rank_markers(paths.ranks) == (["3"], [])


def test_the_node_waits_until_its_ranks_ended(tmp_path: Path) -> None:
    a = _mpi_agent(tmp_path)
    proc = _rank(a.paths, "1", 1.5)
    begun = time.time()
    a._await_ranks(1)
    assert proc.poll() == 0 and time.time() - begun > 1.0
    assert (a.canceled, a.timed_out, a.stop_reason) == (False, False, None)
    assert json.loads(Path(a.paths.pids).read_text()) == {}  # the placeholder is gone again


def test_a_rank_that_never_starts_ends_the_wait_with_node_zeros_status(tmp_path: Path) -> None:
    a = _mpi_agent(tmp_path)
    master = a.manifest.paths_of(a.manifest.nodes[0]).status
    threading.Timer(0.5, lambda: Path(master).write_text("{}")).start()
    begun = time.time()
    a._await_ranks(1)
    assert 0.4 < time.time() - begun < 10 and a.stop_reason is None


def test_the_engine_stopping_the_node_ends_the_wait(tmp_path: Path) -> None:
    a = _mpi_agent(tmp_path)

    def stop_recorded() -> None:  # what the engine does to the peers of a failed node
        deadline = time.time() + 10
        while not os.path.exists(a.paths.pids) and time.time() < deadline:
            time.sleep(0.02)
        for pid in json.loads(Path(a.paths.pids).read_text()).values():
            os.killpg(pid, signal.SIGKILL)
    threading.Thread(target=stop_recorded, daemon=True).start()
    a._await_ranks(2)
    assert a.stop_reason is None


def test_cancel_and_the_wall_clock_stop_the_ranks_on_the_node(tmp_path: Path) -> None:
    a = _mpi_agent(tmp_path)
    proc = _rank(a.paths, "1", 60)
    Path(a.paths.cancel).write_text("canceled")
    a._await_ranks(1)
    assert a.canceled and a.stop_reason == "canceled" and proc.wait(10) == -signal.SIGTERM
    b = _mpi_agent(tmp_path / "b", max_wall_clock_seconds=1)
    proc = _rank(b.paths, "1", 60)
    b._await_ranks(1)
    assert b.timed_out and "max_wall_clock_seconds=1" in str(b.stop_reason)
    assert proc.wait(10) == -signal.SIGTERM

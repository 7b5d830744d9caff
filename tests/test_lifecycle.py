"""Nothing a run starts outlives it, a reader never waits on a dead engine, a deleted copy heals.

Real processes: a daemon the job starts with setsid, an engine killed with SIGKILL, the run's
workspace folder removed while the run goes on.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import textwrap
import time
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.engine.control import info_path
from tests.support import process_gone, wait_until


def _script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(body))
    return folder


def _gated_job(folder: Path, gate: Path, lines: int = 40) -> Path:
    """Prints `lines` lines, waiting for `gate` after the sixth."""
    return _script(folder, "count.py", f"""
        import os, time
        for i in range({lines}):
            print(f"line {{i}}", flush=True)
            if i == 5:
                while not os.path.exists({str(gate)!r}):
                    time.sleep(0.02)
            time.sleep(0.01)
    """)


def _expected(lines: int = 40) -> str:
    return "".join(f"line {i}\n" for i in range(lines))


def test_a_setsid_daemon_of_the_job_is_gone_after_the_run(ws: bai.Workspace, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    src = _script(tmp_path / "src", "daemon.py", f"""
        import os, subprocess
        # daemons in sessions of their own: one left by a shell that exits, one left by this
        # process (which stays alive to the end), and a child of the latter that cleared its environment
        subprocess.run(["sh", "-c", "setsid sleep 300 & echo $! >> {pids}"], check=True)
        daemon = subprocess.Popen(["sh", "-c", "env -i sleep 302 & echo $! >> {pids}; exec sleep 301"],
                                  start_new_session=True)
        with open({str(pids)!r}, "a") as fh:
            fh.write(f"{{daemon.pid}}\\n")
        print("started", flush=True)
    """)
    run = ws.experiment("life").submit(JobSpec(source_directory=src, script="daemon.py"))
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    daemons = [int(p) for p in pids.read_text().split()]
    assert len(daemons) == 3
    try:
        assert wait_until(lambda: all(process_gone(p) for p in daemons), 10), daemons
    finally:
        for pid in daemons:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_reading_an_active_run_restarts_a_killed_engine(ws: bai.Workspace, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = ws.experiment("life").submit(JobSpec(source_directory=_gated_job(tmp_path / "src", gate),
                                               script="count.py"))
    assert wait_until(lambda: run.status == "Running", 60)
    pid = int(json.loads(info_path(ws.path).read_text())["pid"])
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: process_gone(pid), 10)
    gate.write_text("go")
    deadline = time.monotonic() + 60
    while run.status != "Completed":  # the loop users write: it must not spin forever
        assert time.monotonic() < deadline, run.get_details()
        time.sleep(0.05)
    assert json.loads(info_path(ws.path).read_text())["pid"] != pid
    assert (run.files_dir / run.main_log()).read_text() == _expected()


@pytest.mark.parametrize("reader", ["get_details", "get_metrics"])
def test_reading_details_or_metrics_restarts_a_killed_engine(ws: bai.Workspace, tmp_path: Path,
                                                             reader: str) -> None:
    """Only this reader is called after the kill: it alone must bring an engine back."""
    gate = tmp_path / "gate"
    src = _script(tmp_path / "src", "metered.py", f"""
        import os, time
        from batchai_jupyter import Run
        run = Run.get_context()
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.02)
        for i in range(40):
            run.log("n", i)
        print("done", flush=True)
    """)
    run = ws.experiment("life").submit(JobSpec(source_directory=src, script="metered.py"))
    assert wait_until(lambda: run.status == "Running", 60)
    pid = int(json.loads(info_path(ws.path).read_text())["pid"])
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: process_gone(pid), 10)
    gate.write_text("go")
    if reader == "get_details":
        def over() -> bool:
            return bool(run.get_details()["status"] == "Completed")
    else:
        def over() -> bool:
            return bool(run.get_metrics().get("n") == list(range(40)))
    deadline = time.monotonic() + 60
    while not over():  # the loop users write: it must not spin forever
        assert time.monotonic() < deadline, ws.history.run_row(run.id)
        time.sleep(0.05)
    assert json.loads(info_path(ws.path).read_text())["pid"] != pid
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    assert run.get_metrics()["n"] == list(range(40))


def test_a_run_folder_deleted_mid_run_is_copied_anew_from_the_start(ws: bai.Workspace,
                                                                   tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = ws.experiment("life").submit(JobSpec(source_directory=_gated_job(tmp_path / "src", gate),
                                               script="count.py"))
    log = run.files_dir / run.main_log()
    assert wait_until(lambda: log.exists() and log.read_text().count("\n") >= 6, 60)
    shutil.rmtree(ws.paths.run_dir(run.id))
    gate.write_text("go")
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    assert log.read_text() == _expected()

"""A full (or read-only) workspace disk, for real: a small tmpfs under the workspace.

The copies into the workspace wait for space while the engine goes on reading status and
heartbeats (no node is declared lost), the run says why in properties["warning"], and the final
files are complete once space returns. With the whole workspace on the full disk, node folders
included (a local cluster whose jobs run as the engine's user), the agents' heartbeats go on
and no node is declared lost either. Writes a client makes get a WorkspaceError, not a raw
sqlite3 or OS error.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.engine.control import forget, stop_engine
from batchai_jupyter.errors import BatchAIError, WorkspaceError
from batchai_jupyter.notebook.widget import RunDetails
from batchai_jupyter.view import render
from tests.support import wait_until

TMPFS_SIZE = "8m"
LINES = 30_000  # ~3 MB of stdout: more than the space left on the tmpfs
LINE = "line {i:06d} " + "x" * 88


def _mount_tmpfs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip(reason="mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(reason=f"cannot mount a tmpfs here: {done.stderr.strip()}")


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, leave: int) -> Path:
    """A filler file that leaves about `leave` bytes free on the file system of `folder`."""
    filler = folder / "filler.bin"
    st = os.statvfs(folder)
    size = max(0, st.f_bavail * st.f_frsize - leave)
    with open(filler, "wb") as fh:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            try:
                size -= fh.write(chunk[:size])
            except OSError:
                break
    return filler


@pytest.fixture
def runs_on_tmpfs(ws: bai.Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The workspace's runs/ folder on an 8 MB tmpfs (node folders stay on the real disk)."""
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "3")  # the engine inherits it
    runs = ws.paths.runs
    _mount_tmpfs(runs)
    try:
        yield runs
    finally:
        stop_engine(ws.path)
        forget(ws.path)
        _umount(runs)


def _chatty_job(folder: Path, gate: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "chatty.py").write_text(textwrap.dedent(f"""
        import os, sys, time
        for i in range({LINES}):
            sys.stdout.write({LINE!r}.format(i=i) + "\\n")
        sys.stdout.flush()
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.05)
        print("the end", flush=True)
    """))
    return folder


def test_a_full_workspace_disk_waits_and_loses_nothing(ws: bai.Workspace, runs_on_tmpfs: Path,
                                                      tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    filler = _fill(runs_on_tmpfs, leave=1 << 20)
    run = ws.experiment("full").submit(JobSpec(source_directory=_chatty_job(tmp_path / "src", gate),
                                               script="chatty.py"))
    warning = lambda: str(run.get_details()["properties"].get("warning") or "")  # noqa: E731
    assert wait_until(lambda: warning().startswith("workspace disk full"), 60), run.get_details()
    assert run.status == "Running"
    shown = dict(render.run_properties(run.row()))  # what RunDetails and the summary show
    assert shown["Warning"].startswith("workspace disk full"), shown
    assert "workspace disk full" in run._repr_html_()
    widget = RunDetails(run, poll_seconds=0.05)
    try:
        assert wait_until(lambda: "Warning" in widget.properties.value
                          and "workspace disk full" in widget.properties.value, 30), widget.properties.value
    finally:
        widget.close()
    time.sleep(5)  # past BATCHAI_NODE_LOST_SECONDS=3: heartbeats still count
    assert run.status == "Running", run.get_details()
    assert all(n["state"] != "unusable" for n in ws.history.nodes("local")), ws.history.nodes("local")
    gate.write_text("go")  # the job ends while the disk is still full: the run is not final yet
    time.sleep(2)
    assert run.status in ("Running", "Finalizing"), run.get_details()
    assert warning().startswith("workspace disk full")
    filler.unlink()  # space returns
    assert run.wait_for_completion(timeout=120)["status"] == "Completed"
    expected = "".join(LINE.format(i=i) + "\n" for i in range(LINES)) + "the end\n"
    assert (run.files_dir / run.main_log()).read_text() == expected
    assert "warning" not in run.get_details()["properties"]
    assert "Warning" not in dict(render.run_properties(run.row()))
    assert all(n["state"] != "unusable" for n in ws.history.nodes("local"))


@pytest.fixture
def ws_on_tmpfs(tmp_path: Path) -> Iterator[bai.Workspace]:
    """A whole workspace on an 8 MB tmpfs."""
    mnt = tmp_path / "mnt"
    _mount_tmpfs(mnt)
    workspace = bai.Workspace.create(mnt / ".batchai")
    try:
        yield workspace
    finally:
        workspace.history.close()
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=False)
        stop_engine(workspace.path)
        forget(workspace.path)
        _umount(mnt)


def test_submit_on_a_full_disk_raises_a_workspace_error(ws_on_tmpfs: bai.Workspace, src: Path) -> None:
    ws = ws_on_tmpfs
    _fill(ws.path, leave=0)
    with pytest.raises(WorkspaceError, match="free space") as caught:
        ws.experiment("full").submit(JobSpec(source_directory=src, script="train.py"))
    assert isinstance(caught.value, BatchAIError)
    assert ws.history.run_rows() == []


def test_a_read_only_history_raises_a_workspace_error(ws_on_tmpfs: bai.Workspace, src: Path) -> None:
    ws = ws_on_tmpfs
    ws.history.ensure_experiment("ro")  # the history exists before the disk turns read-only
    ws.history.close()  # no file open for writing: the tmpfs can be remounted read-only
    subprocess.run(["mount", "-o", "remount,ro", str(ws.path.parent)], check=True)
    with pytest.raises(WorkspaceError, match="run history"):
        ws.history.add_intent("cancel", "no-such-run")
    with pytest.raises(WorkspaceError):
        ws.experiment("ro").submit(JobSpec(source_directory=src, script="train.py"))


@pytest.fixture
def whole_ws_on_tmpfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[bai.Workspace]:
    """A whole workspace on an 8 MB tmpfs, node folders of its local cluster included; on
    teardown nothing it started lives and nothing stays mounted."""
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "2")  # the engine inherits them
    monkeypatch.setenv("BATCHAI_LOCAL_RUN_AS", "engine")  # node folders: <ws>/clusters/*/nodes
    monkeypatch.setenv("BATCHAI_ENGINE_IDLE_SECONDS", "30")
    monkeypatch.setenv("BATCHAI_KILL_GRACE", "2")
    mnt = tmp_path / "whole"
    _mount_tmpfs(mnt)
    try:
        workspace = bai.Workspace.create(mnt / ".batchai")
        yield workspace
        workspace.history.close()
        stop_engine(workspace.path)
        forget(workspace.path)
    finally:
        for filler in mnt.glob("filler.bin"):  # space back, so the kills below are recorded
            filler.unlink()
        for run_dir in mnt.glob(".batchai/clusters/*/nodes/*/runs/*"):
            _kill_run_dir(run_dir)
        _umount(mnt)


def _kill_run_dir(run_dir: Path) -> None:
    """SIGKILL the agent and the job's process groups a node's run folder recorded."""
    pids: list[int] = []
    try:
        pids += [-int(p) for p in json.loads((run_dir / "pids.json").read_text() or "{}").values()]
    except (OSError, ValueError):
        pass
    try:
        pids.append(int((run_dir / "agent.started").read_text()))
    except (OSError, ValueError):
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _full_for(ws: bai.Workspace, run: bai.Run, seconds: float) -> set[str]:
    """Fill the workspace's disk, keep it full `seconds` while the run stays active; the states
    its nodes had meanwhile. The filler is left in place."""
    filler = _fill(ws.path.parent, leave=0)
    assert os.statvfs(ws.path.parent).f_bavail == 0  # not one block left, for node files too
    states: set[str] = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        st = os.statvfs(ws.path.parent)
        if st.f_bavail:  # something was freed meanwhile: full again
            with open(filler, "ab") as fh, contextlib.suppress(OSError):
                fh.write(b"\0" * (st.f_bavail * st.f_frsize))
        states |= {n["state"] for n in ws.history.nodes("local")}
        assert run.status in ("Running", "Finalizing"), run.get_details()
        time.sleep(0.1)
    return states


def test_a_full_disk_under_the_whole_workspace_declares_no_node_lost(
        whole_ws_on_tmpfs: bai.Workspace, tmp_path: Path) -> None:
    """The node folders fill up with the workspace, twice for longer than the node-lost timeout:
    while the job waits, and as it ends (its agent's state and status.json wait for space). The
    heartbeat goes on, no node is lost, and the run ends with every line once space returns."""
    ws = whole_ws_on_tmpfs
    gate, last = tmp_path / "gate", tmp_path / "last"
    src = tmp_path / "src2"
    src.mkdir()
    (src / "steady.py").write_text(textwrap.dedent(f"""
        import os, time
        def wait(path):
            while not os.path.exists(path):
                time.sleep(0.05)
        for i in range(200):
            print(f"before {{i}}", flush=True)
        wait({str(gate)!r})
        for i in range(200):
            print(f"after {{i}}", flush=True)
        wait({str(last)!r})  # then ends, writing nothing
    """))
    run = ws.experiment("whole").submit(JobSpec(source_directory=src, script="steady.py"))
    log = run.files_dir / run.main_log()
    assert wait_until(lambda: log.exists() and "before 199" in log.read_text(), 60)
    states = _full_for(ws, run, 3 * 2 + 2)  # well past BATCHAI_NODE_LOST_SECONDS=2
    (ws.path.parent / "filler.bin").unlink()  # space returns
    gate.write_text("go")
    assert wait_until(lambda: "after 199" in log.read_text(), 60)
    last.write_text("go")  # the job ends on a full disk
    states |= _full_for(ws, run, 3 * 2 + 2)
    assert states <= {"running", "idle", "preparing"}, states
    assert run.status in ("Running", "Finalizing")  # its end is not lost, it waits for space
    (ws.path.parent / "filler.bin").unlink()
    assert run.wait_for_completion(timeout=90)["status"] == "Completed"
    expected = "".join(f"before {i}\n" for i in range(200)) + "".join(f"after {i}\n" for i in range(200))
    assert log.read_text() == expected
    details = run.get_details()
    assert not [e for e in details["events"] if "lost" in (e.get("message") or "")], details["events"]
    assert details["properties"].get("attempt", 0) == 0  # never requeued
    assert all(n["state"] != "unusable" and not n.get("error") for n in ws.history.nodes("local"))
    assert " lost" not in ws.paths.engine_log.read_text()

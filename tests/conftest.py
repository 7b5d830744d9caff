"""Shared fixtures: a fresh workspace per test, its engine stopped and its processes reaped."""
from __future__ import annotations

import json
import os
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.engine.control import forget, stop_engine

REPO = Path(__file__).resolve().parents[1]


def _pids_under(path: Path) -> list[int]:
    """Processes whose command line mentions the workspace (engine, agents, jobs)."""
    me, needle, pids = os.getpid(), str(path).encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[bai.Workspace]:
    """A new workspace in a temp dir; on teardown its engine stops and nothing it started lives."""
    monkeypatch.setenv("BATCHAI_ENGINE_IDLE_SECONDS", "30")
    monkeypatch.setenv("BATCHAI_KILL_GRACE", "2")
    workspace = bai.Workspace.create(tmp_path / "ws" / ".batchai")
    yield workspace
    for run in workspace.history.run_rows(status=("Queued", "Preparing", "Running", "CancelRequested")):
        workspace.history.add_intent("cancel", run["id"])
    for _ in range(2):  # twice: a client call racing the teardown may have started an engine
        stop_engine(workspace.path)
        forget(workspace.path)
        for pid in _pids_under(workspace.path):  # the engine and agents name the workspace
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for pids in workspace.path.glob("clusters/*/nodes/*/runs/*/pids.json"):  # the jobs' groups
        for pgid in json.loads(pids.read_text() or "{}").values():
            try:
                os.killpg(int(pgid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """A source directory with a small training script that logs, writes outputs and logs/."""
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text(textwrap.dedent("""
        import os, sys, time
        from batchai_jupyter import Run
        run = Run.get_context()
        epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
        os.makedirs("outputs", exist_ok=True); os.makedirs("logs", exist_ok=True)
        for epoch in range(epochs):
            print(f"epoch {epoch} loss {1.0 / (epoch + 1):.3f}", flush=True)
            run.log("loss", 1.0 / (epoch + 1), step=epoch)
            with open("logs/train.log", "a") as fh:
                fh.write(f"log line {epoch}\\n")
            time.sleep(0.05)
        with open("outputs/model.txt", "w") as fh:
            fh.write("weights")
        print("done", file=sys.stderr)
    """))
    return folder

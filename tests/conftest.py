"""Shared fixtures: a fresh workspace per test, its engine stopped and its processes reaped;
the session's temp files kept in a folder of its own (see the hooks at the end)."""
from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.engine.control import forget, stop_engine
from batchai_jupyter.node.tree import unmount_below

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
    unmount_below(str(workspace.path))  # run views (overlays) of agents killed above


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


# -- temp files ------------------------------------------------------------------------------------
# The whole session (pytest's tmp_path, the engines, agents, jobs, kernels and sshd sessions it
# starts) writes temp files under one folder of its own, removed when the process exits; what
# still appears in the machine's temp folder during the session is reported. With
# BATCHAI_TEST_TMP_STRICT=1 (`make test` and CI) names a test process makes (tempfile's
# tmpXXXXXXXX, torchelastic_*) fail the session: another test session on the machine writes in a
# folder of its own (batchai-tests-*), so only a program outside the tests can make them there.
_SESSION_TMP = pytest.StashKey[dict]()
_SESSION_ENV = "BATCHAI_TEST_SESSION_TMP"
_OURS = re.compile(r"^(tmp[a-z0-9_]{8}|torchelastic_.*)$")


def session_temp() -> Path:
    """This session's temp folder: every workspace, node and run folder of its tests lies below
    it, so what a test left on the machine (containers, accounts) is told apart from another
    session's by it."""
    return Path(os.environ[_SESSION_ENV])


def session_tag() -> str:
    """Six hex digits unique to this session, for names the whole machine shares (the accounts
    of local clusters are named after their cluster): two test runs at once do not collide."""
    return hashlib.sha1(str(session_temp()).encode()).hexdigest()[:6]


def screens_dir() -> Path:
    """Where the browser tests' screenshots go: BATCHAI_SCREENS, else .cache/screens in this
    repository (gitignored). They outlive the session, for a person to look at."""
    return Path(os.environ.get("BATCHAI_SCREENS") or REPO / ".cache" / "screens")


def pytest_configure(config: pytest.Config) -> None:
    system = tempfile.gettempdir()
    folder = tempfile.mkdtemp(prefix="batchai-tests-", dir=system)
    atexit.register(shutil.rmtree, folder, True)  # after the atexit stops of daemons started later
    config.stash[_SESSION_TMP] = {"system": system, "folder": folder, "before": set(os.listdir(system)),
                                  "started": time.time()}
    os.environ["TMPDIR"] = folder
    os.environ[_SESSION_ENV] = folder
    tempfile.tempdir = folder
    # jobs of local clusters run as the engine's user here, so tests can hand them files under
    # their 0700 tmp_path (gates, data); tests/test_isolation.py covers the default (run_as="auto")
    os.environ.setdefault("BATCHAI_LOCAL_RUN_AS", "engine")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_SESSION_TMP, None)
    if state is None:
        return
    new = sorted(set(os.listdir(state["system"])) - state["before"])
    new = [name for name in new if not name.startswith("batchai-tests-")]  # other sessions' own
    ours = [name for name in new if _OURS.match(name)]
    kept = sorted(n for n in os.listdir(state["folder"]) if not n.startswith("pytest-of-"))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    reporter.write("\n")
    shots = [p for p in screens_dir().glob("*.png") if p.stat().st_mtime >= state["started"]]
    if shots:
        reporter.write_line(f"screenshots ({len(shots)} written during the session): {screens_dir()}")
    if kept:
        reporter.write_line(f"temp entries the session left (removed with {state['folder']}): "
                            f"{', '.join(kept)}")
    if new:
        reporter.write_line(f"new in {state['system']} during the session: {', '.join(new)}",
                            red=bool(ours))
    if ours and os.environ.get("BATCHAI_TEST_TMP_STRICT") == "1":
        reporter.write_line("a test process wrote to the machine's temp folder instead of $TMPDIR",
                            red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

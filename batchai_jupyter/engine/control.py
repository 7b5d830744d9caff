"""Starting, finding and stopping a workspace's engine process (clients use this).

A client writes its change to history.db first, then asks whether an engine runs (the engine
lock); an engine that exits because it was idle lets go of the lock first, then looks for work
once more and starts a successor if some came (loop.py): so a submit that races an exiting
engine is always taken by one of the two.
"""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..layout import WorkspacePaths
from ..node.reap import without_marker

#: an engine a client started a moment ago may not hold its lock yet: not started twice (the
#: time is the workspace's engine.spawned file's, so every client process sees it)
SPAWN_GRACE = 1.0


def lock_path(ws_path: Path) -> Path:
    return WorkspacePaths.of(ws_path).engine_lock


def info_path(ws_path: Path) -> Path:
    return WorkspacePaths.of(ws_path).engine_info


def is_running(ws_path: Path) -> bool:
    """True while some process holds the engine lock of this workspace."""
    fd = os.open(lock_path(ws_path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock we took
    return False


def ensure_engine(ws_path: Path) -> None:
    """Start the engine if none runs; cheap enough to call before every client action (one
    lock probe, never skipped: an engine seen a moment ago may have exited since)."""
    spawned = WorkspacePaths.of(ws_path).engine_spawned
    try:
        if time.time() - spawned.stat().st_mtime < SPAWN_GRACE:
            return  # one is starting (an idle engine hands over when it exits: loop.py hand_over)
    except OSError:
        pass  # none started here yet
    if not is_running(ws_path):
        start_engine(ws_path)
        try:
            spawned.touch()
        except OSError:  # a full disk: the lock alone keeps a second engine from running
            pass


def wake_engine(ws_path: Path) -> None:
    """Tell a sleeping engine there is work (a submit, an intent) instead of letting it find
    that at its next tick; without an engine, or where nothing watches, this changes nothing."""
    wake = WorkspacePaths.of(ws_path).wake_dir
    try:
        wake.mkdir(exist_ok=True)
        (wake / "client").touch()
    except OSError:
        pass  # the tick finds the work anyway


def notify_engine(ws_path: Path) -> None:
    """After a change the engine acts on: start it if none runs, and wake it."""
    ensure_engine(ws_path)
    wake_engine(ws_path)


def start_engine(ws_path: Path) -> None:
    """Spawn `python -m batchai_jupyter.engine` detached: it outlives this process."""
    log = WorkspacePaths.of(ws_path).engine_log
    argv = [sys.executable, "-m", "batchai_jupyter.engine", "serve", "--workspace", str(ws_path)]
    line = " ".join(shlex.quote(a) for a in argv)
    # sh backgrounds the engine and exits: the engine is re-parented to init, never a zombie of ours
    # started from inside a job (a child run's submit), it must not carry the job's marker, or
    # the job's end would take it along (node/reap.py)
    subprocess.run(["/bin/sh", "-c", f"setsid {line} </dev/null >>{shlex.quote(str(log))} 2>&1 &"],
                   check=True, stdin=subprocess.DEVNULL, env=without_marker(os.environ))


def engine_info(ws_path: Path) -> dict[str, Any]:
    running = is_running(ws_path)
    try:
        info = json.loads(info_path(ws_path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        info = {}
    return {"running": running, **(info if running else {})}


def stop_engine(ws_path: Path, timeout: float = 15) -> bool:
    """Ask the engine to exit (SIGTERM); runs on nodes go on and are picked up next time.

    An engine that was waiting for the lock takes over when the first exits: it is asked too.
    """
    signaled: set[int] = set()
    end = time.time() + timeout
    while time.time() < end:
        info = engine_info(ws_path)
        if not info["running"]:
            break
        pid = info.get("pid")
        if pid and pid not in signaled:
            signaled.add(pid)
            try:
                os.kill(int(pid), signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    forget(ws_path)
    return bool(signaled)


def forget(ws_path: Path) -> None:
    """The next client call probes the lock at once (an engine was killed, not starting)."""
    WorkspacePaths.of(ws_path).engine_spawned.unlink(missing_ok=True)

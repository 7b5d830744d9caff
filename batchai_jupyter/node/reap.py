"""Stop what a job left behind on its node when it ends (Linux /proc; elsewhere a no-op).

Killing a process's group misses what left it: a daemon started with `setsid`, a child that
made its own session. The agent starts each process in a session of its own (its pid), so what
is left of a job at its end is every process

- in one of those sessions or groups (/proc/<pid>/stat, fields 5 and 6), or
- whose environment carries the job's marker: JOB_MARKER names the variables, and the values
  name this run on this node (a process that called setsid itself keeps the environment), or
- whose parent chain leads to one of the above (a daemon that cleared its environment, while
  its parent lives: an orphan without the marker belongs to init, and is not found).

The agent itself and its ancestors are never matched. A process that launches engines or
agents (control.start_engine) drops the marker variables, so nothing of another run inherits it.
"""
from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Mapping

#: the job environment's variables whose values, together, name one run's share on one node
JOB_MARKER = ("BATCHAI_RUN_ID", "BATCHAI_METRICS_FILE")
PROC = "/proc"


def without_marker(env: Mapping[str, str]) -> dict[str, str]:
    """`env` less the marker variables: for processes that must outlive the job they start from."""
    return {k: v for k, v in env.items() if k not in JOB_MARKER}


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, process group, session) of a live process; None when it is gone."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2:].split()  # after "pid (comm) ": state ppid pgrp session
    try:
        return int(fields[1]), int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        return None


def _has_marker(pid: int, marker: set[bytes]) -> bool:
    try:
        with open(f"{PROC}/{pid}/environ", "rb") as fh:
            return marker.issubset(fh.read().split(b"\0"))
    except OSError:
        return False


def leftovers(sessions: Iterable[int], marker: Mapping[str, str]) -> list[int]:
    """The pids of the job's processes still alive (see the module docstring)."""
    try:
        pids = [int(name) for name in os.listdir(PROC) if name.isdigit()]
    except OSError:
        return []
    keep = {0}  # this process and its ancestors
    pid = os.getpid()
    while pid not in keep:
        keep.add(pid)
        info = _stat(pid)
        pid = info[0] if info else 0
    roots = set(sessions) - keep
    wanted = {f"{k}={v}".encode() for k, v in marker.items()}
    parents: dict[int, int] = {}
    matched: set[int] = set()
    for pid in pids:
        info = _stat(pid)
        if info is None or pid in keep:
            continue
        parents[pid] = info[0]
        if info[1] in roots or info[2] in roots or (wanted and _has_marker(pid, wanted)):
            matched.add(pid)
    grown = True
    while grown:  # and their descendants
        grown = False
        for pid, ppid in parents.items():
            if pid not in matched and ppid in matched:
                matched.add(pid)
                grown = True
    return sorted(matched)


def kill_leftovers(sessions: Iterable[int], marker: Mapping[str, str]) -> list[int]:
    """SIGKILL what is left of the job; returns the pids signalled."""
    pids = leftovers(sessions, marker)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return pids

"""How the agent writes its small files: atomically, in place, or waiting for space.

A full disk must not cost a heartbeat or a status (the engine would take the node for lost, or
never see the run end), so each file is written the way that survives it.
"""
from __future__ import annotations

import os
import time
from contextlib import suppress

from ..errors import DISK_FULL_ERRNOS

DISK_FULL_RETRY_SECONDS = 1.0  # a full node disk: how often status.json is tried again


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError:
        with suppress(OSError):  # no half-written file is left behind (a full disk)
            os.unlink(tmp)
        raise
    os.replace(tmp, path)


def write_in_place(path: str, data: bytes, mode: int = 0o644) -> None:
    """Overwrite a small file where it is: once written, a file of one block needs no new
    block, so a full node disk does not stop it (a reader may see a mix of old and new bytes)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, mode)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def write_small(path: str, data: bytes) -> None:
    """write_atomic, or in place when the node's disk is full (no block for a new file)."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        write_in_place(path, data)


def write_when_space(path: str, data: bytes) -> None:
    """write_atomic, waiting for space while the node's disk is full (the heartbeat goes on)."""
    told = False
    while True:
        try:
            write_atomic(path, data)
            return
        except OSError as exc:
            if exc.errno not in DISK_FULL_ERRNOS:
                raise
            if not told:
                told = True
                try:  # the agent's log is on that disk too
                    print(f"[agent] the node's disk is full: {os.path.basename(path)} waits for space",
                          flush=True)
                except OSError:
                    pass
        time.sleep(DISK_FULL_RETRY_SECONDS)

"""How a run gets its Azure volumes: a FUSE mount through rclone, or a staged copy.

Decided at submit (a run property and a line in the run's log say which) and checked again on the
node, which falls back to staging when it lacks FUSE. `mount_mode` of a cluster or the
BATCHAI_MOUNT_MODE environment variable asks for one: auto (default) | fuse | staged.
"""
from __future__ import annotations

import os
import shutil

FUSE = "fuse"
STAGED = "staged"
MOUNT_MODES = ("auto", FUSE, STAGED)


def fuse_available(path: str | None = None) -> str | None:
    """None when rclone FUSE mounts work here, else why not (said in the run's log)."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3", path=path) is None and shutil.which("fusermount", path=path) is None:
        return "fusermount3 is not installed"
    if shutil.which("rclone", path=path) is None:
        return "rclone is not installed (pip install 'batchai-jupyter[azure]' brings it)"
    return None


def choose_mode(requested: str | None, path: str | None = None) -> tuple[str, str]:
    """(fuse | staged, why): `requested` is a cluster's or BATCHAI_MOUNT_MODE's auto | fuse | staged."""
    wanted = requested or "auto"
    if wanted == STAGED:
        return STAGED, "staged as asked (mount_mode='staged')"
    if wanted == FUSE:
        return FUSE, "FUSE mount through rclone, as asked (mount_mode='fuse')"
    missing = fuse_available(path)
    if missing is None:
        return FUSE, "FUSE mount through rclone"
    return STAGED, f"staged: {missing}"

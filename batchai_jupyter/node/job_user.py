"""Run a job's processes as an unprivileged account when the agent runs as root.

The engine picks the account (the local backend's `run_as`) and names it in the manifest. The
agent keeps running as root: it builds the run folder, hands the folders the job writes to over to
the account, starts every process with that uid and gid (no supplementary groups), and reads,
collects and removes everything afterwards. What the job cannot reach is what that account cannot:
the workspace (history.db, secrets.json), other clusters' runs and the agent's own memory.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from .manifest import JobUser


def hand_over(user: JobUser, folders: Iterable[str], files: Iterable[str] = (),
              keep: Iterable[str] = ()) -> None:
    """The folders (recursively) and files become the account's; symlinks are not followed, and
    mount points (FUSE volumes show their own owner; an overlay view of the snapshot shows the
    account's own tree, node/tree.py) and the `keep` folders are left as they are."""
    uid, gid = user["uid"], user["gid"]
    kept = {os.path.abspath(k) for k in keep}

    def left(path: str) -> bool:
        return os.path.abspath(path) in kept or os.path.ismount(path)

    for folder in folders:
        if not os.path.isdir(folder) or left(folder):
            continue
        os.lchown(folder, uid, gid)
        for root, dirs, names in os.walk(folder):
            dirs[:] = [d for d in dirs if not left(os.path.join(root, d))]
            for name in dirs + names:
                path = os.path.join(root, name)
                if not left(path):
                    os.lchown(path, uid, gid)
    for path in files:
        with open(path, "a"):  # the job appends to it (metrics.jsonl): it must exist, as its own
            pass
        os.lchown(path, uid, gid)


def popen_kwargs(user: JobUser | None) -> dict[str, Any]:
    """subprocess.Popen arguments that start a process as the account (none: as the agent)."""
    if user is None:
        return {}
    return {"user": user["uid"], "group": user["gid"], "extra_groups": []}


def user_env(user: JobUser | None, env: Mapping[str, str], home: str) -> dict[str, str]:
    """The job's environment for the account: its name, and a home it can write (the job's temp)."""
    out = dict(env)
    if user is not None:  # BATCHAI_JOB_UID/GID: FUSE mounts show their files as the account's
        out.update(USER=user["name"], LOGNAME=user["name"], HOME=home,
                   BATCHAI_JOB_UID=str(user["uid"]), BATCHAI_JOB_GID=str(user["gid"]))
    return out

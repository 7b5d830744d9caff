"""A cluster's node setup task (cluster.json nodeSetup.setupTask): once per node, before its first job.

Batch AI ran it when a node was allocated; here a node is a folder that may serve many runs, so the
agent runs the command before the job of the first run that finds no record of it, under a lock
(two runs starting together on one node run it once), and records its hash in the node's folder
when it succeeded. A changed command runs again; a failed one fails that run and is tried again
by the next. Its output is the run's `stdout-setup_task[-<node>].txt`.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable

from .manifest import RunManifest
from .process import ProcessPlan

RECORD = "setup-task.json"


def pending(manifest: RunManifest) -> bool:
    """True when this node has not yet run the cluster's current setup task successfully."""
    if not manifest.setup_task:
        return False
    try:
        with open(os.path.join(manifest.node_root, RECORD)) as fh:
            return bool(json.load(fh).get("sha256") != _digest(manifest.setup_task))
    except (OSError, ValueError, AttributeError):
        return True


def plan(manifest: RunManifest, env: dict[str, str]) -> ProcessPlan:
    suffix = f"-{manifest.node_index}" if manifest.multi_node else ""
    return ProcessPlan(name="setup_task", argv=["/bin/bash", "-c", str(manifest.setup_task)], env=dict(env),
                       stdout=f"stdout-setup_task{suffix}.txt", stderr=f"stderr-setup_task{suffix}.txt")


def run_once(manifest: RunManifest, run: Callable[[ProcessPlan], int | None],
             env: dict[str, str]) -> int | None:
    """Run the setup task unless recorded (under the node's lock); its exit code, None if skipped."""
    os.makedirs(manifest.node_root, exist_ok=True)
    fd = os.open(os.path.join(manifest.node_root, "setup-task.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not pending(manifest):
            return None
        code = run(plan(manifest, env))
        if code == 0:
            record = {"sha256": _digest(str(manifest.setup_task)), "run_id": manifest.run_id, "at": time.time()}
            path = os.path.join(manifest.node_root, RECORD)
            with open(f"{path}.tmp{os.getpid()}", "w") as fh:
                json.dump(record, fh)
            os.replace(f"{path}.tmp{os.getpid()}", path)
        return code
    finally:
        os.close(fd)


def _digest(command: str) -> str:
    return hashlib.sha256(command.encode()).hexdigest()

"""Speaking for the agents of a job Slurm ended (time limit, scancel, node failure).

An agent killed with its job cannot write its status.json, and the engine waits for one per
node. For each node of the run whose agent did not write one, this writes it, with the Slurm
state as the cause (and the last line of the agent's log), so the run ends precisely instead of
waiting for a lost-node timeout. These are node files, read by the engine like any agent's.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from ...node.paths import RunPaths
from ...records import RunRow
from ..transport import Transport
from .watch import GONE

log = logging.getLogger("batchai_jupyter.engine")


def speak_for_agents(transport: Transport, node_roots: list[str], run: RunRow, key: str,
                     job_id: str, state: str, reason: str) -> None:
    """Write status.json for each node (of `node_roots`, in rank order) whose agent could not."""
    canceled = bool(run.get("cancel_requested"))
    what = "is gone from squeue" if state == GONE else f"ended {state}"
    why = f" ({reason})" if reason and reason not in ("None", "") else ""
    for index, (row, root) in enumerate(zip(run["nodes"], node_roots, strict=True)):
        paths = RunPaths(root, key)
        if transport.exists(paths.status):
            continue
        message = f"Slurm job {job_id} {what}{why} before the agent on node {row['id']} finished"
        tail = (transport.read_bytes(paths.agent_log) or b"").decode("utf-8", "replace").strip()
        if tail:
            message += f"; its log ends: {tail.splitlines()[-1][:300]}"
        status: dict[str, Any] = {"node_index": index, "exit_codes": {}, "files": {},
                                  "reason": message, "canceled": canceled, "timed_out": False,
                                  "ended": time.time(), "slurm_state": state}
        if not canceled:
            status["error"] = {"phase": "slurm", "message": message}
        transport.write_bytes(paths.status, json.dumps(status).encode())
        log.warning("run %s: %s", run["id"], message)

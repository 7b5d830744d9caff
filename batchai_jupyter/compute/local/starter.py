"""The engine's side of a local cluster's warm agent starter (node/zygote.py).

One starter process per cluster and interpreter, made on the first launch and replaced when it
died or the cluster's python changed; its stdin is a pipe only the engine holds, so the starter
ends with the engine, and the agents it forked live on.
"""
from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

log = logging.getLogger("batchai_jupyter.engine")
ZYGOTE_MODULE = "batchai_jupyter.node.zygote"


class AgentStarter:
    """Requests to the cluster's starter; see the module docstring."""

    def __init__(self, root: Path):
        self.root = root
        self._proc: subprocess.Popen[bytes] | None = None
        self._python: str | None = None

    def request(self, python: str, manifest_path: str, log_path: str) -> bool:
        """Ask for one agent; False when no starter can take it (the caller starts it itself)."""
        line = (json.dumps({"manifest": manifest_path, "log": log_path}) + "\n").encode()
        for _ in range(2):  # a starter that died since the last request is replaced once
            proc = self._running(python)
            if proc is None or proc.stdin is None:
                return False
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
                return True
            except OSError:
                self.close()
        return False

    def _running(self, python: str) -> subprocess.Popen[bytes] | None:
        if self._proc is not None and (self._proc.poll() is not None or self._python != python):
            self.close()
        if self._proc is None:
            try:
                self._proc = subprocess.Popen(
                    [python, "-m", ZYGOTE_MODULE, str(self.root)], stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL, stderr=None, start_new_session=True)
            except OSError as exc:
                log.warning("cannot start the agent starter of %s: %s", self.root, exc)
                return None
            self._python = python
        return self._proc

    def close(self) -> None:
        """End the starter (its stdin closes); agents it started are not touched."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def is_agent_of(pid: int, manifest_path: str) -> bool:
    """Whether pid is (still) an agent that may run this manifest: started by its path, or forked
    by the starter of the cluster the manifest lies under."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().split(b"\0")
    except OSError:
        return False
    if any(manifest_path.encode() in a for a in args):
        return True
    if ZYGOTE_MODULE.encode() not in args:
        return False
    roots = [a.decode(errors="replace").rstrip("/") for a in args[args.index(ZYGOTE_MODULE.encode()) + 1:] if a]
    return any(manifest_path.startswith(root + "/") for root in roots)

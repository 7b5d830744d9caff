"""Slurm's commands, run here or on a login host, and the answers read from sinfo.

Everything this backend asks Slurm goes through one SlurmCommands object: sbatch, squeue,
scancel, srun, scontrol and sinfo, with the cluster's slurm_bin and slurm_conf, locally or
through `login_host` over SSH. Job states are read by the watcher (watch.py), not here.
"""
from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable
from typing import Any

from ...errors import ClusterError

UNREACHABLE = 255  # exit code for "the command could not be run on the login host"

Runner = Callable[[list[str], float], "tuple[int, str, str]"]


class SlurmCommands:
    """Runs sbatch/squeue/scontrol/scancel/sinfo here or, through `remote`, on a login host."""

    def __init__(self, config: dict[str, Any], remote: Runner | None = None):
        self.bin: str = config.get("slurm_bin") or ""
        self.conf: str | None = config.get("slurm_conf")
        self.remote = remote
        self.where = f"on {config['login_host']}" if config.get("login_host") else "here"

    def path(self, tool: str) -> str:
        return os.path.join(self.bin, tool) if self.bin else tool

    def __call__(self, tool: str, *args: str, timeout: float = 60) -> tuple[int, str, str]:
        argv = [self.path(tool), *args]
        if self.remote is not None:
            line = " ".join(shlex.quote(a) for a in argv)
            if self.conf:
                line = f"SLURM_CONF={shlex.quote(self.conf)} {line}"
            try:
                return self.remote(["/bin/sh", "-c", line], timeout)
            except (OSError, EOFError) as exc:  # the login host is down or refused us
                return UNREACHABLE, "", f"cannot reach the login host: {exc}"
        env = dict(os.environ)
        if self.conf:
            env["SLURM_CONF"] = self.conf
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError as exc:
            return 127, "", f"{argv[0]}: {exc.strerror}"
        except subprocess.TimeoutExpired:
            return 124, "", f"{argv[0]} did not answer within {timeout:.0f} s"
        return proc.returncode, proc.stdout, proc.stderr

    def on_node(self, job_id: str, node: str, *argv: str, timeout: float = 30) -> tuple[int, str, str]:
        """Run a command on one node of a running job, as a step beside the job's own."""
        return self(
            "srun", f"--jobid={job_id}", "--overlap", f"--nodelist={node}", "--nodes=1", "--ntasks=1",
            *argv, timeout=timeout)


def partitions(commands: SlurmCommands, cluster: str | None) -> dict[str, tuple[int, bool]]:
    """Partition name -> (node count, is the default), from one sinfo call."""
    code, out, err = commands("sinfo", "--noheader", "--format=%P|%D", timeout=30)
    if code != 0:
        raise ClusterError(f"slurm cluster {cluster!r}: cannot run sinfo "
                           f"{commands.where}: {err.strip() or f'exit code {code}'}")
    found: dict[str, tuple[int, bool]] = {}
    for line in out.splitlines():
        part, _, count = line.strip().partition("|")
        if part:
            default = part.endswith("*")
            name = part.rstrip("*")
            prev = found.get(name, (0, False))
            found[name] = (prev[0] + int(count or 0), prev[1] or default)
    return found


class NodeAddresses:
    """Slurm node name -> its address (sinfo %o), asked once and remembered."""

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def of(self, name: str, commands: SlurmCommands) -> str:
        if name not in self._known:
            code, out, _err = commands("sinfo", "--noheader", "--Node", "--format=%N|%o", timeout=30)
            if code == 0:
                for line in out.splitlines():
                    node, _, addr = line.strip().partition("|")
                    if node:
                        self._known[node] = addr or node
        return self._known.get(name, name)


def split_host(text: str) -> tuple[str, int]:
    """"host" or "host:port" (port 22 by default)."""
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return text, 22

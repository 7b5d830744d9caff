"""The batch script of a slurm run: sbatch options, then one node agent per node through srun.

Kept apart from the backend's bookkeeping (backend.py, jobs.py) so the script can be read in one
place; it is also written to the run's job folder on the shared root, where users can inspect it.
"""
from __future__ import annotations

import math
import shlex
from typing import TYPE_CHECKING, Any

from ...node.paths import run_key as folder_key
from ...records import RunRow

if TYPE_CHECKING:
    from ..base import NodeInfo
    from .commands import SlurmCommands

TIME_MARGIN_SECONDS = 120      # --time = max_wall_clock + this (the agent enforces the exact limit)
MANIFEST_WAIT_SECONDS = 600    # an srun task gives up when the engine never writes its manifest
LINGER_SECONDS = 30            # a finished job waits this long at most for the engine's release


def run_key(run: RunRow) -> str:
    """The run folder's name of a run row's current attempt."""
    return folder_key(run["id"], int(run["properties"].get("attempt", 0)))


def slurm_time(seconds: float) -> str:
    """Slurm's D-HH:MM:SS for a limit, rounded up to whole minutes (Slurm's granularity)."""
    minutes = max(1, math.ceil(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


class BatchScriptMixin:
    """sbatch options and script text for SlurmCompute (uses its config, paths and commands)."""

    prefix: str
    commands: SlurmCommands

    if TYPE_CHECKING:  # provided by SlurmCompute and Compute
        @property
        def config(self) -> dict[str, Any]: ...
        @property
        def shared_root(self) -> str: ...
        def job_dir(self, key: str) -> str: ...
        def python(self, node: NodeInfo | None = None) -> str: ...
        def gpus_per_node(self) -> int: ...

    def sbatch_options(self, spec: dict[str, Any], key: str, count: int) -> list[str]:
        wall = float(spec.get("max_wall_clock_seconds") or 7 * 24 * 3600)
        opts = [f"--job-name={self.prefix}{key}", f"--nodes={count}", "--ntasks-per-node=1",
                f"--time={slurm_time(wall + TIME_MARGIN_SECONDS)}"]
        if self.config.get("partition"):
            opts.append(f"--partition={self.config['partition']}")
        if self.gpus_per_node() > 0:
            opts.append(f"--gres=gpu:{self.gpus_per_node()}")
        if spec.get("priority") == "low":
            opts.append("--nice=100")  # raising priority needs Slurm operator rights: not done
        jobdir = self.job_dir(key)
        opts += [f"--output={jobdir}/slurm-%j.out", f"--chdir={jobdir}", "--no-requeue"]
        return opts + list(self.config.get("sbatch_args", []))

    def batch_script(self, run: RunRow, key: str, count: int) -> str:
        """The script sbatch runs: record the nodes, then one agent per node through srun."""
        q = shlex.quote
        manifest = f'{q(self.shared_root + "/nodes/")}"$SLURMD_NODENAME"{q("/runs/" + key + "/run.json")}'
        task = (f'm={manifest}; i=0; while [ ! -f "$m" ]; do i=$((i+1)); '
                f'if [ $i -gt {MANIFEST_WAIT_SECONDS * 10} ]; then '
                'echo "no run manifest at $m" >&2; exit 3; fi; sleep 0.1; done; '
                f'exec {q(self.python(None))} -m batchai_jupyter.node.agent "$m" '
                '>>"$(dirname "$m")/agent.log" 2>&1')
        started = f'{q(self.shared_root + "/nodes/")}*{q("/runs/" + key + "/agent.started")}'
        lines = ["#!/bin/bash"]
        lines += [f"#SBATCH {opt}" for opt in self.sbatch_options(run["spec"], key, count)]
        lines += [
            f"# batchai_jupyter run {run['id']} (folder {key}): each node waits for its run.json",
            "set -u",
            (f'{{ echo "$SLURM_JOB_ID"; {q(self.commands.path("scontrol"))} show hostnames '
             '"$SLURM_JOB_NODELIST"; } > nodes.tmp && mv nodes.tmp nodes'),
            (f"{q(self.commands.path('srun'))} --nodes={count} --ntasks-per-node=1 "
             f"--kill-on-bad-exit=0 /bin/sh -c {q(task)}"),
            "rc=$?",
            "# once an agent ran, hold the allocation until the engine is done with the run: it may",
            "# still need a step on a node (to kill what a dead agent left behind)",
            f"if ls {started} >/dev/null 2>&1; then",
            f"  i=0; while [ ! -e released ] && [ $i -lt {LINGER_SECONDS * 10} ]; do i=$((i+1)); sleep 0.1; done",
            "fi",
            "exit $rc",
        ]
        return "\n".join(lines) + "\n"

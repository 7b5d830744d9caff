"""Distribution -> the argv, environment and log file names of every process on a node.

Pure functions of the run manifest, so the engine (for names) and the agent (for processes)
agree without talking to each other.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ProcessPlan:
    """One process the agent starts."""

    name: str                 # unique on the node: "0", "0-1", "wk-0", "ps-0", "mpirun"
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stdout: str = "stdout.txt"
    stderr: str = "stderr.txt"


def total_processes(spec: dict[str, Any]) -> int:
    return int(spec.get("node_count", 1)) * int(spec.get("process_count_per_node", 1))


def log_names(spec: dict[str, Any], node_index: int, local_rank: int) -> tuple[str, str]:
    """stdout.txt for a single process, stdout-<node>-<rank>.txt when there are several."""
    if total_processes(spec) == 1 or spec.get("master_only"):
        return "stdout.txt", "stderr.txt"
    return f"stdout-{node_index}-{local_rank}.txt", f"stderr-{node_index}-{local_rank}.txt"


def main_log_name(spec: dict[str, Any]) -> str:
    """The file wait_for_completion(show_output=True) streams: the first process's stdout."""
    if spec.get("distribution") == "tensorflow":
        return "stdout-wk-0.txt"
    if spec.get("distribution") == "mpi":
        return "stdout.txt"  # the one mpirun on node 0 gathers every rank's output
    return log_names(spec, 0, 0)[0]


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(value: str, env: dict[str, str]) -> str:
    """$VAR / ${VAR} from the process's own environment (Batch AI job.json arguments use it)."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), value)


def job_argv(spec: dict[str, Any], env: dict[str, str], python: str,
             arguments: list[str] | None = None) -> list[str]:
    """The command a process runs: a shell line, or the interpreter with script and arguments."""
    if spec.get("command"):
        return ["/bin/bash", "-c", spec["command"]]
    interpreter = spec.get("python_interpreter") or python
    args = spec.get("arguments", []) if arguments is None else arguments
    return [expand(interpreter, env), expand(spec["script"], env), *(expand(a, env) for a in args)]


def gpu_split(gpu_ids: list[str], per_process: int, local_rank: int, processes: int) -> str | None:
    """CUDA_VISIBLE_DEVICES for one process: its own slice of the node's GPUs."""
    if not gpu_ids:
        return None
    if per_process <= 0:
        per_process = max(1, len(gpu_ids) // max(1, processes))
    chosen = gpu_ids[local_rank * per_process:(local_rank + 1) * per_process]
    return ",".join(chosen) if chosen else ""


def plan_processes(job: dict[str, Any], base_env: dict[str, str], python: str) -> list[ProcessPlan]:
    """Every process this node starts for the run described by `job` (the run manifest)."""
    spec = job["spec"]
    dist = spec.get("distribution")
    node_index = int(job["node_index"])
    if spec.get("master_only") and node_index != 0:
        return []
    if dist is None or dist == "pytorch":
        return _per_process(job, base_env, python, dist == "pytorch")
    from .launch_dist import plan_distributed  # mpi and tensorflow
    return plan_distributed(job, base_env, python)


def _per_process(job: dict[str, Any], base_env: dict[str, str], python: str,
                 pytorch: bool) -> list[ProcessPlan]:
    spec = job["spec"]
    node_index = int(job["node_index"])
    per_node = 1 if spec.get("master_only") else int(spec.get("process_count_per_node", 1))
    nodes = job["nodes"]
    world = len(nodes) * per_node
    gpu_ids = [str(g) for g in nodes[node_index].get("gpu_ids", [])]
    plans = []
    for local_rank in range(per_node):
        rank = node_index * per_node + local_rank
        env = dict(base_env)
        env["AZ_BATCHAI_TASK_INDEX"] = str(rank)
        visible = gpu_split(gpu_ids, int(spec.get("gpus_per_process", 0)), local_rank, per_node)
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        if pytorch:
            env.update(MASTER_ADDR=str(nodes[0]["address"]), MASTER_PORT=str(job["master_port"]),
                       WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(local_rank),
                       NODE_RANK=str(node_index), LOCAL_WORLD_SIZE=str(per_node))
        out, err = log_names(spec, node_index, local_rank)
        plans.append(ProcessPlan(name=f"{node_index}-{local_rank}", argv=job_argv(spec, env, python),
                                 env=env, stdout=out, stderr=err))
    return plans


def describe(plan: ProcessPlan) -> str:
    return " ".join(shlex.quote(a) for a in plan.argv)

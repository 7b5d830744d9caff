"""One MPI rank, started by node 0's mpirun on any node of the run:

    python -m batchai_jupyter.node.mpi_rank <the node's run folder>

mpirun starts ranks before a slow node may have materialised the snapshot, and a rank started
over ssh has none of the node's variables. So the rank waits for the file its node's agent leaves
once the node is ready (mpi-rank.json, a RankEnv), then takes that node's folder, environment
and command (its arguments' $VAR / ${VAR} expanded in the rank's own environment).

Before it becomes the job, the rank leaves a marker in its node's run folder (ranks/<rank>) and
holds an flock on it that the job inherits: the node's agent knows the rank runs while the lock
is held, and stages the node's outputs only once every rank it expects has let go of it.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import time

from .paths import RunPaths
from .plan_mpi import RankEnv
from .process import expand, gpu_split

READY_TIMEOUT = float(os.environ.get("BATCHAI_MPI_READY_SECONDS", "600"))


def rank_environ(plan: RankEnv, environ: dict[str, str]) -> dict[str, str]:
    """The rank's environment: what mpirun gave it, the node's variables, its rank and GPUs."""
    env = dict(environ)
    env.update(plan.env)
    rank = env.get("OMPI_COMM_WORLD_RANK", env.get("PMI_RANK", "0"))
    local = int(env.get("OMPI_COMM_WORLD_LOCAL_RANK", "0")) % max(1, plan.per_node)
    env["AZ_BATCHAI_TASK_INDEX"] = rank
    visible = gpu_split(plan.gpu_ids, plan.gpus_per_process, local, plan.per_node)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return env


def rank_argv(plan: RankEnv, env: dict[str, str]) -> list[str]:
    """The rank's command: its arguments' $VAR / ${VAR} from the rank's own environment."""
    return [expand(a, env) for a in plan.argv] if plan.expand else list(plan.argv)


def hold_marker(paths: RunPaths, rank: str) -> int:
    """ranks/<rank>, locked by a descriptor the job inherits (created locked: never seen free)."""
    os.makedirs(paths.ranks, exist_ok=True)
    final = os.path.join(paths.ranks, rank)
    tmp = f"{final}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"rank": rank, "pid": os.getpid(), "started": time.time()}).encode())
    os.replace(tmp, final)
    os.set_inheritable(fd, True)
    return fd


def main(argv: list[str]) -> int:
    run_dir = argv[1]
    paths = RunPaths.of_run_dir(run_dir)
    ready = paths.rank_env
    end = time.time() + READY_TIMEOUT
    while not os.path.exists(ready):
        if os.path.exists(paths.status) or time.time() > end:
            print(f"batchai: this node's agent did not get ready ({run_dir})", file=sys.stderr)
            return 1
        time.sleep(0.05)
    with open(ready, "rb") as fh:
        plan = RankEnv.from_json(fh.read())
    env = rank_environ(plan, dict(os.environ))
    argv = rank_argv(plan, env)
    os.chdir(plan.cwd)
    hold_marker(paths, env["AZ_BATCHAI_TASK_INDEX"])
    os.execvpe(argv[0], argv, env)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))

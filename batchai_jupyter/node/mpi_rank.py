"""One MPI rank, started by node 0's mpirun on any node of the run:

    python -m batchai_jupyter.node.mpi_rank <the node's run folder>

mpirun starts ranks before a slow node may have materialised the snapshot, and a rank started
over ssh has none of the node's variables. So the rank waits for the file its node's agent leaves
once the node is ready (mpi-rank.json, a RankEnv), then takes that node's folder, environment
and command.
"""
from __future__ import annotations

import os
import sys
import time

from .paths import RunPaths
from .plan_mpi import RankEnv
from .process import gpu_split

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
    os.chdir(plan.cwd)
    os.execvpe(plan.argv[0], plan.argv, env)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))

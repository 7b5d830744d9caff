"""Slurm: what a run through batchai costs against starting the same thing with Slurm by hand.

    python bench/bench_slurm.py [--quick]

A private Slurm (munged, slurmctld, two slurmd on loopback; tests/compute/slurm_env.py):
1. Submit -> first log line of a 1-node run (warm engine) vs `sbatch` by hand of a script that
   prints a line, timed until the line is in its output file (the same Slurm batch path; target
   <= 3x). For scale, the same against an interactive `srun -N1 python -c 'print(1)'`, which skips
   the batch path altogether.
2. Submit -> Completed of a 2-node run vs `sbatch --wait -N2` of a script that runs
   `srun python -c 'print(1)'` on both nodes (target <= 3x).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from bench._common import median, parse_args, report, temp_workspace
from tests.compute.slurm_env import start_slurm


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env, timeout=120)
    return time.perf_counter() - t0


def sbatch_first_line(folder: Path, env: dict[str, str], index: int) -> float:
    """sbatch a one-line script and wait for its line in the output file, polling every 10 ms."""
    out = folder / f"hand-{index}.out"
    t0 = time.perf_counter()
    subprocess.run(["sbatch", "--parsable", "-N1", f"--output={out}", "--wrap",
                    f"{sys.executable} -c 'print(1)'"], check=True, capture_output=True, env=env)
    while not (out.exists() and out.read_text().strip()):
        if time.perf_counter() - t0 > 60:
            raise TimeoutError(f"{out} stayed empty")
        time.sleep(0.01)
    return time.perf_counter() - t0


def first_line(ws: bai.Workspace, cluster: str, folder: Path) -> float:
    t0 = time.perf_counter()
    run = ws.experiment("bench").submit(JobSpec(source_directory=folder, script="hello.py"), cluster=cluster)
    next(run.stream(follow=True))
    elapsed = time.perf_counter() - t0
    run.wait_for_completion(show_output=False, timeout=120)
    return elapsed


def two_nodes(ws: bai.Workspace, cluster: str, folder: Path) -> float:
    t0 = time.perf_counter()
    run = ws.experiment("bench").submit(JobSpec(source_directory=folder, script="hello.py", node_count=2),
                                        cluster=cluster)
    run.wait_for_completion(show_output=False, timeout=120)
    return time.perf_counter() - t0


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    reps = 1 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-slurm-") as tmp:
        try:
            slurm = start_slurm(Path(tmp) / "slurm")
        except Exception as exc:  # noqa: BLE001 — no Slurm here: say why and do not fail CI
            print(f"skipped: Slurm is not available: {exc}")
            return 0
        try:
            env = slurm.env
            script = Path(tmp) / "byhand.sh"
            script.write_text(f"#!/bin/sh\nexec srun {sys.executable} -c 'print(1)'\n")
            folder = Path(tmp) / "src"
            folder.mkdir()
            (folder / "hello.py").write_text("print('hello', flush=True)\n")
            with temp_workspace() as ws:
                ws.create_cluster("slurm", backend="slurm", partition="debug", max_nodes=2,
                                  shared_root=str(ws.path / "slurm-root"), python=sys.executable,
                                  slurm_conf=str(slurm.conf), poll_min_seconds=0.2, poll_max_seconds=2.0)
                first_line(ws, "slurm", folder)  # warm: engine started, objects in the shared root
                ours = median([first_line(ws, "slurm", folder) for _ in range(reps)])
                hand = median([sbatch_first_line(Path(tmp), env, i) for i in range(reps)])
                bare = median([timed(["srun", "-N1", sys.executable, "-c", "print(1)"], env)
                               for _ in range(reps)])
                report("submit -> first log line (slurm, 1 node)", ours, "sbatch -> first line, by hand",
                       hand, "<= 3x")
                report("submit -> first log line (slurm, 1 node)", ours, "srun -N1 python -c (no batch)",
                       bare, "for scale")
                ours2 = median([two_nodes(ws, "slurm", folder) for _ in range(reps)])
                bare2 = median([timed(["sbatch", "--wait", "-N2", "--ntasks-per-node=1",
                                       f"--output={tmp}/byhand-%j.out", str(script)], env)
                                for _ in range(reps)])
                report("submit -> Completed (slurm, 2 nodes)", ours2, "sbatch --wait -N2 + srun", bare2,
                       "<= 3x")
        finally:
            slurm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

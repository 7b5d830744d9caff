"""A job writing a large file to ./outputs, then Completed, vs the job alone + `cp` of its outputs.

    python -m bench.bench_outputs [--quick]      (1 GiB; quick: 64 MiB)
Inside a run the outputs are collected into the workspace when the run ends (a rename where the
node and the workspace share a filesystem, as the local cluster does). The baseline runs the same
script in a folder of the same filesystem and copies its outputs with `cp -r`. Target <= 1.3x.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import batchai_jupyter as bai
from bench._common import median, parse_args, report, temp_workspace

SCRIPT = """\
import os, sys
block = os.urandom(1 << 20)
os.makedirs("outputs", exist_ok=True)
with open("outputs/big.bin", "wb") as fh:
    for _ in range(int(sys.argv[1])):
        fh.write(block)
"""


def by_hand(src: Path, work: Path, mib: int) -> float:
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(src, work)
    t = time.perf_counter()
    subprocess.run([sys.executable, "write.py", str(mib)], cwd=work, check=True)
    subprocess.run(["cp", "-r", str(work / "outputs"), str(work / "collected")], check=True)
    elapsed = time.perf_counter() - t
    shutil.rmtree(work, ignore_errors=True)
    return elapsed


def in_a_run(ws: bai.Workspace, src: Path, mib: int) -> float:
    t = time.perf_counter()
    run = ws.experiment("outputs").submit(bai.JobSpec(source_directory=src, script="write.py",
                                                      arguments=[str(mib)]))
    details = run.wait_for_completion(timeout=900)
    elapsed = time.perf_counter() - t
    if details["status"] != "Completed" or run.file_path("outputs/big.bin").stat().st_size != mib << 20:
        raise RuntimeError(f"the benchmark run ended {details['status']} without its output")
    run.delete()  # frees the workspace copy before the next round
    return elapsed


def main() -> None:
    args = parse_args(__doc__)
    mib = 64 if args.quick else 1024
    repeats = 2 if args.quick else 3
    with temp_workspace() as ws:
        src = Path(tempfile.mkdtemp(prefix="bench-out-", dir=ws.path))  # same filesystem as the runs
        (src / "write.py").write_text(SCRIPT)
        ws.experiment("outputs").submit(bai.JobSpec(source_directory=src, command="true")).wait_for_completion()
        baseline = median([by_hand(src, Path(ws.path) / "by-hand", mib) for _ in range(repeats)])
        inside = median([in_a_run(ws, src, mib) for _ in range(repeats)])
        report(f"{mib} MiB to ./outputs: submit -> Completed", inside, "the job + cp -r", baseline, "<= 1.3")
        os.sync()


if __name__ == "__main__":
    main()

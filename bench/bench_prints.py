"""A print-heavy job inside a run vs the same script buffered outside, measured in the same run.

    python -m bench.bench_prints [--quick]
The job prints MB of short lines (100 MB; 10 MB in quick mode). Inside a run its stdout is a
file the engine tails, buffered and flushed every 50 ms (node/autoflush); outside, the same
interpreter writes to a file with Python's default buffering. Reported: submit -> Completed vs
the script alone (target <= 1.2x), and the same job with PYTHONUNBUFFERED=1 (the old way) for
comparison. The engine's idle submit overhead is included in the run's time.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import batchai_jupyter as bai
from bench._common import median, parse_args, report, temp_workspace

SCRIPT = """\
import sys, time
start = time.perf_counter()
line = "x" * 63
for i in range({count}):
    print(line)
sys.stdout.flush()
sys.stderr.write(f"job seconds {{time.perf_counter() - start}}\\n")
"""


def _job_seconds(stderr: str) -> float:
    return float(next(line for line in stderr.splitlines() if line.startswith("job seconds")).split()[-1])


def outside(script: Path, out: Path, repeats: int) -> tuple[float, float]:
    """(wall time, the job's own loop time) of the script with Python's default buffering."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    times, own = [], []
    for _ in range(repeats):
        with open(out, "wb") as fh:
            t = time.perf_counter()
            done = subprocess.run([sys.executable, str(script)], stdout=fh, stderr=subprocess.PIPE,
                                  check=True, env=env, text=True)
            times.append(time.perf_counter() - t)
        own.append(_job_seconds(done.stderr))
    return median(times), median(own)


def inside(ws: bai.Workspace, spec: bai.JobSpec, repeats: int) -> tuple[float, float]:
    """(submit -> Completed, the job's own loop time) inside a run on the local cluster."""
    times, own = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        run = ws.experiment("prints").submit(spec)
        details = run.wait_for_completion(timeout=600)
        times.append(time.perf_counter() - t)
        if details["status"] != "Completed":
            raise RuntimeError(f"the benchmark job ended {details['status']}")
        own.append(_job_seconds(run.file_path("stderr.txt").read_text()))
    return median(times), median(own)


def main() -> None:
    args = parse_args(__doc__)
    megabytes = 10 if args.quick else 100
    repeats = 2 if args.quick else 3
    count = megabytes * (1 << 20) // 64
    with tempfile.TemporaryDirectory(prefix="bench-prints-") as tmp, temp_workspace() as ws:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "prints.py").write_text(SCRIPT.format(count=count))
        ws.experiment("prints").submit(bai.JobSpec(source_directory=src, command="true")).wait_for_completion()
        baseline = outside(src / "prints.py", Path(tmp) / "out.txt", repeats)
        buffered = inside(ws, bai.JobSpec(source_directory=src, script="prints.py"), repeats)
        unbuffered = inside(ws, bai.JobSpec(source_directory=src, script="prints.py",
                                            environment_variables={"PYTHONUNBUFFERED": "1"}), repeats)
        report(f"{megabytes} MB prints: submit -> Completed", buffered[0], "same script outside", baseline[0],
               "<= 1.2")
        report(f"{megabytes} MB prints: the job's own loop", buffered[1], "same loop outside", baseline[1],
               "<= 1.2")
        report(f"{megabytes} MB prints, PYTHONUNBUFFERED=1: loop", unbuffered[1], "same loop outside",
               baseline[1], "the old way, for comparison")


if __name__ == "__main__":
    main()

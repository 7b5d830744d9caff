"""A print-heavy job inside a run vs the same script buffered outside, measured in the same run.

    python -m bench.bench_prints [--quick]
The job prints MB of short lines (100 MB; 10 MB in quick mode). Inside a run its stdout is a
file the engine tails, buffered and flushed every 50 ms (node/autoflush); outside, the same
interpreter writes to a file with Python's default buffering. Reported: submit -> Completed vs
the script alone (target <= 1.2x), and the same job with PYTHONUNBUFFERED=1 (the old way) for
comparison. The engine's idle submit overhead is included in the run's time. On a loaded machine
wall times say more about the scheduler than about us: the job's own CPU inside vs outside, and
the engine's CPU while it copies the log (its share of the job's cost), are reported too.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter.engine.control import engine_info
from bench._common import median, parse_args, report, temp_workspace

SCRIPT = """\
import os, sys, time
start = time.perf_counter()
line = "x" * 63
for i in range({count}):
    print(line)
sys.stdout.flush()
cpu = sum(os.times()[:2])
sys.stderr.write(f"job seconds {{time.perf_counter() - start}} cpu {{cpu}}\\n")
"""


def _job_seconds(stderr: str) -> tuple[float, float]:
    """(the loop's wall time, the job's CPU seconds) from the line the script writes."""
    words = next(line for line in stderr.splitlines() if line.startswith("job seconds")).split()
    return float(words[2]), float(words[4])


def _engine_cpu(ws: bai.Workspace) -> float:
    """user + system CPU seconds the workspace's engine has used so far (/proc/<pid>/stat; 0 when
    it cannot be read)."""
    try:
        with open(f"/proc/{int(engine_info(ws.path)['pid'])}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, KeyError, ValueError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def outside(script: Path, out: Path, repeats: int) -> tuple[float, float, float]:
    """(wall time, the job's own loop time, its CPU) of the script with Python's default buffering."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    times, own, cpu = [], [], []
    for _ in range(repeats):
        with open(out, "wb") as fh:
            t = time.perf_counter()
            done = subprocess.run([sys.executable, str(script)], stdout=fh, stderr=subprocess.PIPE,
                                  check=True, env=env, text=True)
            times.append(time.perf_counter() - t)
        loop, used = _job_seconds(done.stderr)
        own.append(loop)
        cpu.append(used)
    return median(times), median(own), median(cpu)


def inside(ws: bai.Workspace, spec: bai.JobSpec, repeats: int) -> tuple[float, float, float, float]:
    """(submit -> Completed, the job's own loop time, its CPU, the engine's CPU) inside a run on
    the local cluster."""
    times, own, cpu, engine = [], [], [], []
    for _ in range(repeats):
        before = _engine_cpu(ws)
        t = time.perf_counter()
        run = ws.experiment("prints").submit(spec)
        details = run.wait_for_completion(timeout=600)
        times.append(time.perf_counter() - t)
        engine.append(_engine_cpu(ws) - before)
        if details["status"] != "Completed":
            raise RuntimeError(f"the benchmark job ended {details['status']}")
        loop, used = _job_seconds(run.file_path("stderr.txt").read_text())
        own.append(loop)
        cpu.append(used)
    return median(times), median(own), median(cpu), median(engine)


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
        report(f"{megabytes} MB prints: the job's CPU", buffered[2], "its CPU outside", baseline[2],
               "~1: the same work")
        report(f"{megabytes} MB prints: the engine's CPU", buffered[3], "the job's CPU outside", baseline[2],
               "small: copying the log")
        report(f"{megabytes} MB prints, PYTHONUNBUFFERED=1: loop", unbuffered[1], "same loop outside",
               baseline[1], "the old way, for comparison")


if __name__ == "__main__":
    main()

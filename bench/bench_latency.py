"""Log latency on the local cluster, next to a bare Python start measured in the same run.

    python bench/bench_latency.py [--quick]
1. submit -> first log line seen by run.stream(): median of 20 (target <= 0.5 s);
2. a job printing timestamps: print -> line seen by run.stream(), p95 (target <= 0.25 s).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import batchai_jupyter as bai
from bench._common import median, p95, parse_args, report, temp_workspace


def bare_python_start(n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "print(1)"], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return median(times)


def main() -> None:
    args = parse_args(__doc__)
    submits = 5 if args.quick else 20
    lines = 40 if args.quick else 200
    with tempfile.TemporaryDirectory(prefix="bench-lat-") as tmp, temp_workspace() as ws:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "hello.py").write_text("print('first line', flush=True)\n")
        (src / "ticks.py").write_text(
            "import sys, time\n"
            f"for i in range({lines}):\n"
            "    print(repr(time.time()), flush=True)\n"
            "    time.sleep(0.01)\n")
        exp = ws.experiment("bench")
        spec = bai.JobSpec(source_directory=src, script="hello.py")
        exp.submit(spec).wait_for_completion()  # warm: engine up, node provisioned
        first_lines = []
        for _ in range(submits):
            t = time.perf_counter()
            run = exp.submit(spec)
            next(run.stream())
            first_lines.append(time.perf_counter() - t)
            run.wait_for_completion()
        baseline = bare_python_start(submits)
        report(f"submit -> first log line (median of {submits})", median(first_lines),
               "bare python start", baseline, "<= 0.5 s absolute")
        run = exp.submit(bai.JobSpec(source_directory=src, script="ticks.py"))
        delays = [time.time() - float(line) for line in run.stream()]
        report(f"print -> stream, p95 of {len(delays)} lines", p95(delays),
               "bare python start", baseline, "<= 0.25 s absolute")
        print(f"median line latency {median(delays) * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms")


if __name__ == "__main__":
    main()

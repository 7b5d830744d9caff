"""Fan-out overhead: N child runs of a trivial script via run.submit_children, next to N plain
subprocess runs of the same script measured in the same run.

    python -m bench.bench_schedules [--quick]
Reports the submit_children call itself and the wall time until the parent
(wait_for_children=True) has ended, each as ms per child run, and the ratio against a plain
`python trivial.py` per run (sequential, as the baseline a user would write by hand). The pool
has max_nodes = CPU count, so runs go in parallel as far as this machine allows.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import batchai_jupyter as bai
from bench._common import parse_args, report, temp_workspace


def plain_runs(script: Path, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run([sys.executable, str(script)], check=True, capture_output=True)
    return (time.perf_counter() - start) / n


def main() -> None:
    args = parse_args(__doc__)
    n = 20 if args.quick else 500
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp, temp_workspace() as ws:
        src = Path(tmp) / "src"
        src.mkdir()
        script = src / "trivial.py"
        script.write_text("print('scored', 1 + 1)\n")
        ws.create_cluster("fanout", max_nodes=max(2, os.cpu_count() or 2), idle_seconds_before_scaledown=600)
        exp = ws.experiment("bench")
        exp.submit(bai.JobSpec(source_directory=src, script="trivial.py"), cluster="fanout").wait_for_completion()
        specs = [bai.JobSpec(source_directory=src, script="trivial.py") for _ in range(n)]
        parent = exp.submit(bai.JobSpec(wait_for_children=True), cluster="fanout")
        start = time.perf_counter()
        children = parent.submit_children(specs)
        submitted = time.perf_counter() - start
        details = parent.wait_for_completion(timeout=3600, raise_on_error=False)
        total = time.perf_counter() - start
        assert details["status"] == "Completed" and len(children) == n, details.get("error")
        baseline = plain_runs(script, n)
        report(f"submit_children({n}), per child", submitted / n, "plain subprocess run", baseline,
               "well under one process start")
        report(f"fan-out of {n} to parent end, per child", total / n, "plain subprocess run", baseline,
               "reported: engine + agent per run vs a bare process")
        print(f"engine overhead per child run: {(total / n - baseline) * 1000:.1f} ms "
              f"({n} children in {total:.1f} s; plain runs {baseline * n:.1f} s)", flush=True)


if __name__ == "__main__":
    main()

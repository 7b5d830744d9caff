"""Run queries and submits stay flat as the history grows: 100 runs vs 100,000 in the same run.

    python -m bench.bench_history [--quick]      (quick: 10,000 runs)
Measured on two workspaces that differ only in how many finished runs they hold:
1. `exp.get_runs()`, first page of 20 (what a notebook or the lab panel shows), median of 30;
2. `exp.submit(spec)` of an unchanged snapshot (the call, not the run), median of 10;
3. `ws.runs(limit=50)` (the CLI's `job list` page), median of 10.
Target for each: the big history within 1.5x the small one.
"""
from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import batchai_jupyter as bai
from bench._common import median, parse_args, report, temp_workspace


def fill(ws: bai.Workspace, count: int) -> None:
    for i in range(count):
        ws.history.insert_run(f"hist_{i:07d}", "hist", "local", {"command": "true"}, None,
                              {"lr": str(i % 7)}, 1, status="Completed")


def timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return median(times)


def measure(ws: bai.Workspace, spec: bai.JobSpec) -> dict[str, float]:
    exp = ws.experiment("hist")
    exp.submit(spec)  # warm: snapshot cache, engine up
    return {
        "first page": timed(lambda: list(itertools.islice(exp.get_runs(), 20)), 30),
        "submit": timed(lambda: exp.submit(spec), 10),
        "runs(limit=50)": timed(lambda: ws.runs(limit=50), 10),
    }


def main() -> None:
    args = parse_args(__doc__)
    big = 10_000 if args.quick else 100_000
    with tempfile.TemporaryDirectory(prefix="bench-hist-") as tmp, temp_workspace() as small_ws, \
            temp_workspace() as big_ws:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "noop.py").write_text("pass\n")
        spec = bai.JobSpec(source_directory=src, script="noop.py")
        fill(small_ws, 100)
        t = time.perf_counter()
        fill(big_ws, big)
        print(f"(filled {big} runs in {time.perf_counter() - t:.1f} s)", flush=True)
        small, large = measure(small_ws, spec), measure(big_ws, spec)
        for name in small:
            report(f"{name} at {big:,} runs", large[name], "at 100 runs", small[name], "<= 1.5")


if __name__ == "__main__":
    main()

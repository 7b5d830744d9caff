"""Many trivial runs on a 2-node local cluster vs a 2-wide pool of the same command, in one run.

    python -m bench.bench_throughput [--quick]      (500 runs; quick: 40)
N plain `exp.submit` calls of a run whose command is `true`, on a local cluster of 2 warm nodes,
timed from the first submit to the last run's Completed event; the baseline runs the same command
N times through a pool of 2 workers (what 2 nodes could do with no scheduler at all). Reported:
wall time per run against the pool's, and the overhead per run, (ours - pool) / N (target
<= 20 ms). The median time each run spends between its status changes says where the time goes.
"""
from __future__ import annotations

import itertools
import subprocess
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import batchai_jupyter as bai
from bench._common import median, parse_args, report, temp_workspace

NODES = 2


def pool_runs(n: int) -> float:
    """Wall time of n `true` processes through a pool of NODES workers."""
    start = time.perf_counter()
    with ThreadPoolExecutor(NODES) as pool:
        list(pool.map(lambda _: subprocess.run(["true"], check=True), range(n)))
    return time.perf_counter() - start


def phases(ws: bai.Workspace, run_ids: list[str]) -> dict[str, float]:
    """Median seconds of each status change ("Queued -> Preparing", ...) over the runs."""
    gaps: dict[str, list[float]] = defaultdict(list)
    for run_id in run_ids:
        events = ws.history.events(run_id)
        for before, after in itertools.pairwise(events):
            gaps[f"{before['status']} -> {after['status']}"].append(after["ts"] - before["ts"])
    return {name: median(values) for name, values in gaps.items()}


def main() -> None:
    args = parse_args(__doc__)
    n = 40 if args.quick else 500
    with tempfile.TemporaryDirectory(prefix="bench-tput-") as tmp, temp_workspace() as ws:
        src = Path(tmp) / "src"
        src.mkdir()
        ws.create_cluster("two", max_nodes=NODES, idle_seconds_before_scaledown=600)
        exp = ws.experiment("tput")
        spec = bai.JobSpec(source_directory=src, command="true")
        warm = [exp.submit(spec, cluster="two") for _ in range(NODES)]  # both nodes up, not timed
        for run in warm:
            run.wait_for_completion(timeout=300)
        start_wall, start = time.time(), time.perf_counter()
        runs = [exp.submit(spec, cluster="two") for _ in range(n)]
        submitted = time.perf_counter() - start
        for run in runs:
            run.wait_for_completion(timeout=3600)
        ends = [ws.history.events(run.id)[-1] for run in runs]
        assert all(e["status"] == "Completed" for e in ends), {e["status"] for e in ends}
        ours = max(e["ts"] for e in ends) - start_wall
        baseline = pool_runs(n)
        report(f"{n} trivial runs on {NODES} nodes, per run", ours / n, f"{NODES}-wide subprocess pool",
               baseline / n, "overhead <= 20 ms per run")
        print(f"overhead per run: {(ours - baseline) / n * 1000:.1f} ms (target <= 20 ms); {n} runs in "
              f"{ours:.2f} s, the pool in {baseline:.2f} s; the submits alone {submitted / n * 1000:.1f} ms "
              f"per run", flush=True)
        print("median per run: " + ", ".join(f"{name} {gap * 1000:.1f} ms"
                                             for name, gap in phases(ws, [r.id for r in runs]).items()),
              flush=True)


if __name__ == "__main__":
    main()

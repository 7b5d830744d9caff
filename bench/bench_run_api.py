"""The in-job Run API's cost: run.log() and run.tag() per call against appending the same JSON
line to a file by hand, and a read-your-writes get_tags() in a real local job against the
job's own start-up.

    python -m bench.bench_run_api [--quick]
Targets: log() <= 3x the hand-written append; get_tags() after a tag() < the job start-up.
"""
from __future__ import annotations

import json
import tempfile
import textwrap
import time
from pathlib import Path

from batchai_jupyter.run_context import JobRun
from bench._common import median, parse_args, report, temp_workspace


def per_call(count: int) -> tuple[float, float, float]:
    """Seconds per call of run.log(), run.tag() and a hand-written append of the same line."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        run_dir = Path(tmp) / "runs" / "r"
        (run_dir / "artifacts").mkdir(parents=True)
        run = JobRun("r", "e", str(run_dir / "metrics.jsonl"), str(run_dir / "artifacts"))
        start = time.perf_counter()
        for i in range(count):
            run.log("loss", 1.0 / (i + 1), step=i)
        log_cost = (time.perf_counter() - start) / count
        start = time.perf_counter()
        for i in range(count):
            run.tag("epoch", i)
        tag_cost = (time.perf_counter() - start) / count
        raw = run_dir / "raw.jsonl"
        start = time.perf_counter()
        for i in range(count):
            line = json.dumps({"name": "loss", "kind": "scalar", "value": 1.0 / (i + 1), "step": i,
                               "ts": time.time()}) + "\n"
            with open(raw, "a", encoding="utf-8") as fh:
                fh.write(line)
        raw_cost = (time.perf_counter() - start) / count
    return log_cost, tag_cost, raw_cost


def read_your_writes(repeats: int) -> tuple[float, float]:
    """(median seconds of tag() + get_tags() inside a local job, median seconds from the job's
    start to its first line: what any job pays before it runs)."""
    import batchai_jupyter as bai
    reads, starts = [], []
    with temp_workspace() as ws, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        assert isinstance(ws, bai.Workspace)
        src = Path(tmp)
        (src / "rw.py").write_text(textwrap.dedent("""
            import time
            from batchai_jupyter import Run
            run = Run.get_context()
            start = time.perf_counter()
            run.tag("k", "v")
            assert run.get_tags()["k"] == "v"
            print("READ", time.perf_counter() - start)
        """))
        for _ in range(repeats):
            submitted = time.time()
            run = ws.experiment("bench").submit(bai.JobSpec(source_directory=src, script="rw.py"))
            run.wait_for_completion()
            line = next(x for x in run.stream() if x.startswith("READ "))
            reads.append(float(line.split()[1]))
            row = run.row()
            starts.append((row["started"] or submitted) - submitted)
    return median(reads), median(starts)


def main() -> None:
    args = parse_args(__doc__ or "")
    count = 2000 if args.quick else 50000
    log_cost, tag_cost, raw_cost = per_call(count)
    report(f"run.log() per call ({count} calls)", log_cost, "hand-written append", raw_cost, "<= 3")
    report(f"run.tag() per call ({count} calls)", tag_cost, "hand-written append", raw_cost, "<= 3")
    read, start = read_your_writes(2 if args.quick else 5)
    report("tag() + get_tags() in a local job", read, "submit to Running", start, "< 1")


if __name__ == "__main__":
    main()

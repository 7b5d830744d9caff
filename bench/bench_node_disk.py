"""Node disk: the second run of a big snapshot starts as fast as a 1-file one; nodes stay small.

    python -m bench.bench_node_disk [--quick]

1. submit -> first line of the job, on a local cluster of one node: the first run of a
   2,000-file snapshot (its tree is built), later runs of it (the tree is there), and runs of a
   1-file snapshot (the baseline). Target: a later run of the 2,000-file snapshot <= 1.2x the
   1-file case.
2. node bytes after N runs: every run folder kept with copied snapshots (what nodes held before
   cleanup) vs the default (ended runs' folders removed, one tree per snapshot).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import median, parse_args, report, temp_workspace

JOB = "print('first line', flush=True)\n"


def make_project(root: Path, files: int, file_bytes: int) -> Path:
    root.mkdir(parents=True)
    (root / "job.py").write_text(JOB)
    for i in range(files - 1):
        folder = root / f"pkg{i % 40}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{i}.py").write_bytes(os.urandom(file_bytes // 2).hex().encode()[:file_bytes])
    return root


MODES: set[str] = set()  # how the measured runs' views were made (overlay, reflink, copy)


def first_line_seconds(ws: Any, src: Path) -> float:
    """Seconds from submit to the job's first line in the workspace (the run is awaited)."""
    from batchai_jupyter import JobSpec
    start = time.perf_counter()
    run = ws.experiment("bench").submit(JobSpec(source_directory=src, script="job.py",
                                                keep_node_files=True), cluster="one")
    line = next(iter(run.stream()))
    took = time.perf_counter() - start
    assert line == "first line", line
    run.wait_for_completion(show_output=False, timeout=300)
    MODES.update(p.read_text() for p in ws.path.glob(f"clusters/*/nodes/*/runs/{run.id}/view.mode"))
    return took


def node_bytes(ws: Any) -> int:
    total = 0
    for folder, _dirs, names in os.walk(ws.path / "clusters"):
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                total += os.lstat(path).st_size
    return total


def runs_then_bytes(src: Path, count: int, keep: bool) -> int:
    """Node bytes once `count` runs ended (and the node upkeep had its chance)."""
    from batchai_jupyter import JobSpec
    with temp_workspace() as workspace:
        ws: Any = workspace
        ws.create_cluster("one", max_nodes=1)
        exp = ws.experiment("disk")
        runs = [exp.submit(JobSpec(source_directory=src, script="job.py", keep_node_files=keep), cluster="one")
                for _ in range(count)]
        for run in runs:
            run.wait_for_completion(show_output=False, timeout=300)
        deadline = time.time() + 30
        while time.time() < deadline and not keep and any((ws.path / "clusters").glob("*/nodes/*/runs/*")):
            time.sleep(0.2)
        return node_bytes(ws)


def main() -> None:
    args = parse_args(__doc__)
    files, file_bytes, repeats, count = (2000, 2048, 2, 4) if args.quick else (2000, 4096, 5, 20)
    with tempfile.TemporaryDirectory(prefix="bench-disk-") as tmp:
        big = make_project(Path(tmp) / "big", files, file_bytes)
        one = make_project(Path(tmp) / "one", 1, file_bytes)
        with temp_workspace() as workspace:
            ws: Any = workspace
            ws.create_cluster("one", max_nodes=1)
            first_line_seconds(ws, Path(tmp) / "one")  # the engine starts; not measured
            first = first_line_seconds(ws, big)
            later = median([first_line_seconds(ws, big) for _ in range(repeats)])
            single = median([first_line_seconds(ws, one) for _ in range(repeats)])
        print(f"snapshot: {files} files of {file_bytes} B; run views: {', '.join(sorted(MODES))}")
        report(f"later run, {files}-file snapshot", later, f"first run, {files} files", first, "< 1")
        report(f"later run, {files}-file snapshot", later, "1-file snapshot", single, "<= 1.2")
        os.environ["BATCHAI_NODE_VIEW"] = "copy"  # as nodes were: a full copy per run, all kept
        try:
            before = runs_then_bytes(big, count, keep=True)
        finally:
            os.environ.pop("BATCHAI_NODE_VIEW", None)
        after = runs_then_bytes(big, count, keep=False)
        ratio = after / before if before else float("inf")
        print(f"node bytes after {count} runs: {before:,} kept copies (before cleanup) | {after:,} "
              f"with cleanup | ratio {ratio:.3f}  (target ~1/{count})", flush=True)


if __name__ == "__main__":
    main()

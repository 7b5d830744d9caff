"""Log latency on the local cluster, next to a bare Python start measured in the same run.

    python bench/bench_latency.py [--quick]
1. submit -> first log line seen by run.stream(): median of 20 (target <= 0.5 s);
2. a job printing timestamps: print -> line seen by run.stream(), p95 (target <= 0.25 s);
3. the same with 32 runs at once on a 32-node cluster, each printing a timestamp every 0.1 s and
   each followed by its own run.stream() in a thread of this process (target p95 <= 0.05 s),
   next to the same 32 jobs started at once as plain processes whose files one thread polls
   every 20 ms (the burst of starts costs that floor too; moonshot <= 1.5x it).
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
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


def concurrent_delays(ws: bai.Workspace, src: Path, runs: int) -> tuple[list[float], list[float]]:
    """print -> stream delays of `runs` runs at once, each followed in its own thread: every
    line's, and those after each run's first second (when all 32 jobs start at once)."""
    ws.create_cluster("many", max_nodes=runs, idle_seconds_before_scaledown=600)
    exp = ws.experiment("bench-many")
    warm = [exp.submit(bai.JobSpec(source_directory=src, command="true"), cluster="many") for _ in range(runs)]
    for run in warm:  # nodes provisioned, not timed
        run.wait_for_completion(timeout=300)
    delays: list[float] = []
    settled: list[float] = []
    lock = threading.Lock()

    def follow(run: bai.Run) -> None:
        got = [time.time() - float(line) for line in run.stream()]
        with lock:
            delays.extend(got)
            settled.extend(got[10:])

    submitted = [exp.submit(bai.JobSpec(source_directory=src, script="slow_ticks.py"), cluster="many")
                 for _ in range(runs)]
    threads = [threading.Thread(target=follow, args=(run,)) for run in submitted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return delays, settled


def polled_delays(src: Path, runs: int, tmp: Path, every: float = 0.02) -> list[float]:
    """The floor for part 3: the same `runs` jobs started at once as plain processes writing to
    files, one thread of this process reading the files every `every` s (the same burst of
    starts on the same cores, no engine): print -> seen delay of every line."""
    outs = [tmp / f"plain-{i}.txt" for i in range(runs)]
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(open(out, "wb")) for out in outs]
        procs = [subprocess.Popen([sys.executable, str(src / "slow_ticks.py")], stdout=fh, cwd=tmp)
                 for fh in handles]  # each child holds its own copy of the file
    offsets, partial = [0] * runs, [b""] * runs
    delays: list[float] = []
    while True:
        done = all(p.poll() is not None for p in procs)
        for i, out in enumerate(outs):
            with open(out, "rb") as fh:
                fh.seek(offsets[i])
                data = fh.read()
            now = time.time()
            offsets[i] += len(data)
            *lines, partial[i] = (partial[i] + data).split(b"\n")
            delays.extend(now - float(line) for line in lines if line)
        if done:
            break
        time.sleep(every)
    return delays


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
        (src / "slow_ticks.py").write_text(
            "import time\n"
            f"for i in range({20 if args.quick else 50}):\n"
            "    print(repr(time.time()), flush=True)\n"
            "    time.sleep(0.1)\n")
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
        many, settled = concurrent_delays(ws, src, 32)
        report(f"32 runs at once: print -> stream, p95 of {len(many)}", p95(many), "bare python start",
               baseline, "<= 0.05 s absolute")
        print(f"32 runs: median line latency {median(many) * 1000:.1f} ms, max {max(many) * 1000:.1f} ms; "
              f"after each run's first second: p95 {p95(settled) * 1000:.1f} ms",
              flush=True)
        floor = polled_delays(src, 32, Path(tmp))
        report("32 runs at once: print -> stream, p95", p95(many), "32 plain jobs, files polled /20 ms",
               p95(floor), "moonshot <= 1.5")


if __name__ == "__main__":
    main()

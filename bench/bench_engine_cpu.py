"""The engine's CPU while idle and while 32 runs print a line a second, next to a 20 ms file
poller measured over the same window.

    python -m bench.bench_engine_cpu [--quick]      (10 s windows; quick: 5 s)
The engine's pid comes from engine.json (engine/control.py engine_info); its CPU is utime +
stime of /proc/<pid>/stat at both ends of the window. The baseline is what a client would run
instead of events: a process that stats its files every 20 ms (one file while idle, one per run
while busy), started just before the window. Reported as CPU ms per wall second (1 ms/s is
0.1 % of one core); targets: idle <= 0.1 %, busy <= 3 %.
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
from bench._common import parse_args, report, temp_workspace

RUNS = 32
TICK = os.sysconf("SC_CLK_TCK")
POLLER = """
import os, sys, time
paths = sys.argv[1:]
while True:
    for p in paths:
        try:
            os.stat(p)
        except OSError:
            pass
    time.sleep(0.02)
"""
PRINTER = """
import time
for i in range(int(__import__("sys").argv[1])):
    print(i, time.time(), flush=True)
    time.sleep(1)
"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def window(engine_pid: int, files: list[Path], seconds: float) -> tuple[float, float]:
    """(engine, poller) CPU seconds per wall second over one window, measured side by side."""
    poller = subprocess.Popen([sys.executable, "-c", POLLER, *map(str, files)])
    try:
        time.sleep(0.5)  # the poller's interpreter start is not part of its polling cost
        engine0, poll0, t0 = cpu_seconds(engine_pid), cpu_seconds(poller.pid), time.perf_counter()
        time.sleep(seconds)
        engine1, poll1, t1 = cpu_seconds(engine_pid), cpu_seconds(poller.pid), time.perf_counter()
    finally:
        poller.kill()
        poller.wait()
    return (engine1 - engine0) / (t1 - t0), (poll1 - poll0) / (t1 - t0)


def engine_pid(ws: bai.Workspace) -> int:
    info = engine_info(ws.path)
    if not info.get("running") or not info.get("pid"):
        raise RuntimeError(f"no engine runs for {ws.path}: {info}")
    return int(info["pid"])


def wait_running(runs: list[bai.Run], timeout: float) -> None:
    end = time.monotonic() + timeout
    while any(run.status != "Running" for run in runs):
        if time.monotonic() > end:
            raise RuntimeError(f"not all {len(runs)} runs were Running after {timeout:.0f} s: "
                               f"{sorted({run.status for run in runs})}")
        time.sleep(0.2)


def main() -> None:
    args = parse_args(__doc__)
    seconds = 5.0 if args.quick else 10.0
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp, temp_workspace() as ws:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "printer.py").write_text(PRINTER)
        watched = Path(tmp) / "watched.txt"
        watched.write_text("")
        ws.create_cluster("many", max_nodes=RUNS, idle_seconds_before_scaledown=600)
        exp = ws.experiment("cpu")
        exp.submit(bai.JobSpec(source_directory=src, command="true"), cluster="many").wait_for_completion()
        time.sleep(1.0)  # the finished run's follow-up (outputs, node idle) is not idle time
        pid = engine_pid(ws)
        idle, idle_poll = window(pid, [watched], seconds)
        report(f"engine CPU, idle ({seconds:.0f} s), per s", idle, "20 ms poll of 1 file", idle_poll,
               "<= 1 ms/s, i.e. 0.1 %")
        lines = int(seconds) + 60  # outlives the wait for all to run and the window
        runs = [exp.submit(bai.JobSpec(source_directory=src, script="printer.py", arguments=[str(lines)]),
                           cluster="many") for _ in range(RUNS)]
        try:
            wait_running(runs, timeout=300)
            logs = [run.file_path(run.main_log(), must_exist=False) for run in runs]
            time.sleep(1.0)  # past the last start
            busy, busy_poll = window(pid if engine_pid(ws) == pid else engine_pid(ws), logs, seconds)
            report(f"engine CPU, {RUNS} runs printing 1 line/s, per s", busy,
                   f"20 ms poll of {RUNS} files", busy_poll, "<= 30 ms/s, i.e. 3 %")
            print(f"engine CPU: idle {idle * 100:.3f} % (target <= 0.1 %), {RUNS} printing runs "
                  f"{busy * 100:.3f} % (target <= 3 %); pollers {idle_poll * 100:.3f} % / "
                  f"{busy_poll * 100:.3f} %", flush=True)
        finally:
            for run in runs:
                run.cancel()
            for run in runs:
                run.wait_for_completion(timeout=120, raise_on_error=False)


if __name__ == "__main__":
    main()

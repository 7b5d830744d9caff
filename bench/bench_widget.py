"""Latency from a line printed by a job to its appearance in the RunDetails widget's model.

    python bench/bench_widget.py [--quick]      (or BENCH_QUICK=1)
A job prints time stamps every 10 ms on the local cluster. Two readers watch it at once:
run.stream() (the engine's own stream path: node -> workspace -> client) and a RunDetails
widget (its background thread's update of the model state). Prints both p95s and their
ratio; target: widget p95 <= 0.5 s.
"""
from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter.notebook.widget import RunDetails
from bench._common import median, p95, parse_args, report, temp_workspace


def main() -> None:
    args = parse_args(__doc__)
    lines = 60 if args.quick else 400
    with tempfile.TemporaryDirectory(prefix="bench-widget-") as tmp, temp_workspace() as ws:
        src = Path(tmp) / "src"
        src.mkdir()
        (src / "ticks.py").write_text(
            "import time\n"
            f"for i in range({lines}):\n"
            "    print(repr(time.time()), flush=True)\n"
            "    time.sleep(0.01)\n")
        exp = ws.experiment("bench")
        exp.submit(bai.JobSpec(source_directory=src, command="echo warm")).wait_for_completion()
        run = exp.submit(bai.JobSpec(source_directory=src, script="ticks.py"))

        stream_delays: list[float] = []

        def follow() -> None:
            for line in run.stream():
                stream_delays.append(time.time() - float(line))

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        widget_delays: list[float] = []
        seen = [0]

        def on_log(change: dict) -> None:
            now = time.time()
            shown = change["new"].splitlines()
            for line in shown[seen[0]:]:
                widget_delays.append(now - float(line))
            seen[0] = len(shown)

        widget = RunDetails(run, start=False)
        widget.observe(on_log, names="log_text")
        widget.start()
        if not widget.wait(300):
            raise SystemExit("the widget did not stop after the run ended")
        reader.join(60)
        widget.close()
        if len(widget_delays) != lines or len(stream_delays) != lines:
            raise SystemExit(f"lines lost: widget {len(widget_delays)}, stream {len(stream_delays)} "
                             f"of {lines}")
        report(f"print -> widget model, p95 of {lines} lines", p95(widget_delays),
               "print -> run.stream() p95", p95(stream_delays), "widget p95 <= 0.5 s")
        print(f"widget median {median(widget_delays) * 1000:.1f} ms, max "
              f"{max(widget_delays) * 1000:.1f} ms; stream median "
              f"{median(stream_delays) * 1000:.1f} ms; target met: "
              f"{p95(widget_delays) <= 0.5}", flush=True)


if __name__ == "__main__":
    main()

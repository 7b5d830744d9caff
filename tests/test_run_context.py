"""Run.get_context() inside a job: every kind of metric, images, and the offline stand-in."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter import JobSpec


def test_metric_kinds_and_images(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "m"
    src.mkdir()
    (src / "log.py").write_text(textwrap.dedent("""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from batchai_jupyter import Run
        run = Run.get_context()
        run.log("lr", 0.1)
        for step, loss in enumerate([0.9, 0.5, 0.2]):
            run.log("loss", loss, step=step)
        run.log_list("acc_per_class", [0.8, 0.9])
        run.log_row("epochs", epoch=1, acc=0.7)
        run.log_row("epochs", epoch=2, acc=0.8)
        plt.plot([0.9, 0.5, 0.2])
        run.log_image("curve", plot=plt)
    """))
    run = ws.experiment("m").submit(JobSpec(source_directory=src, script="log.py"))
    run.wait_for_completion()
    metrics = run.get_metrics()
    assert metrics["lr"] == 0.1 and metrics["loss"] == [0.9, 0.5, 0.2]
    assert metrics["acc_per_class"] == [0.8, 0.9]
    assert metrics["epochs"] == {"epoch": [1, 2], "acc": [0.7, 0.8]}
    image = metrics["curve"]
    assert image.startswith("images/curve-") and image in run.get_file_names()
    assert (ws.run_files_dir(run.id) / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run.get_metrics(name="lr") == {"lr": 0.1}


def test_offline_context_prints() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHAI_")}
    code = ("from batchai_jupyter import Run\n"
            "r = Run.get_context(); r.log('loss', 0.5, step=2); print(r.id)")
    out = subprocess.run([sys.executable, "-c", code],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert "[metric] loss = 0.5 (step 2)" in out and "OfflineRun" in out


def test_cancel_from_another_process(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "s"
    src.mkdir()
    (src / "sleep.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    run = ws.experiment("x").submit(JobSpec(source_directory=src, script="sleep.py"))
    assert next(run.stream()) == "up"
    code = f"import batchai_jupyter as bai\nbai.Workspace({str(ws.path)!r}).get_run({run.id!r}).cancel()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert run.wait_for_completion(raise_on_error=False, timeout=60)["status"] == "Canceled"

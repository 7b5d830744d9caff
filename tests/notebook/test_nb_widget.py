"""RunDetails: the live widget's model state, read from the workspace by its own thread."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.notebook.widget import RunDetails
from tests.notebook.nb_helpers import wait_until

GATED = textwrap.dedent("""
    import os, sys, time
    from batchai_jupyter import Run
    run = Run.get_context()
    gate = sys.argv[1]
    print("first line", flush=True)
    run.log("loss", 0.9, step=0)
    while not os.path.exists(gate):
        time.sleep(0.05)
    run.log("loss", 0.4, step=1)
    os.makedirs("logs", exist_ok=True)
    with open("logs/extra.log", "w") as fh:
        fh.write("from ./logs\\n")
    print("to stderr", file=sys.stderr, flush=True)
    print("last line", flush=True)
""")


def submit(ws: bai.Workspace, folder: Path, body: str, *args: str, **kwargs) -> bai.Run:
    folder.mkdir(exist_ok=True)
    return ws.experiment("widget").submit(bai.JobSpec(source_directory=folder, script="main.py",
                                                      arguments=list(args)),
                                          extra_files={"main.py": body.encode()}, **kwargs)


def test_live_view_follows_the_run_and_stops(ws: bai.Workspace, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run = submit(ws, tmp_path / "src", GATED, str(gate))
    widget = RunDetails(run, poll_seconds=0.05)
    assert widget.running  # the constructor returned while the run goes on: the kernel is free
    assert wait_until(lambda: "first line" in widget.log_text, 60)
    assert wait_until(lambda: widget.status == "Running", 30) and not widget.cancel_button.disabled
    assert "Running" in widget.badge.value and run.id in widget.properties.value
    assert "<details" in widget.properties.value and " open" not in widget.properties.value
    gate.write_text("go")
    assert widget.wait(60), "the update thread must stop when the run ends"
    assert widget.status == "Completed" and not widget.running
    assert widget.log_text.splitlines() == ["first line", "last line"]
    assert "Completed" in widget.badge.value
    assert widget.cancel_button.disabled
    assert list(widget.log_picker.options) == ["stdout.txt", "stderr.txt", "logs/extra.log"]
    widget.log_picker.value = "logs/extra.log"
    assert widget.log_text == "from ./logs\n"
    widget.log_picker.value = "stderr.txt"
    assert "to stderr" in widget.log_text
    assert widget.metrics.tail.series == {"loss": [(0, 0.9), (1, 0.4)]}  # the live charts' data
    summary = widget.static_bundle()["text/html"]  # the final display: images sanitizers keep
    assert 'data-metric="loss"' in summary and 'src="data:image/svg+xml;base64,' in summary
    assert widget.metrics.layout.display is None  # shown once there are metrics


def test_cancel_button_cancels(ws: bai.Workspace, tmp_path: Path) -> None:
    run = submit(ws, tmp_path / "src", "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    widget = RunDetails(run, poll_seconds=0.05)
    assert wait_until(lambda: "up" in widget.log_text, 60)
    widget.cancel_button.click()
    assert widget.cancel_button.disabled
    assert widget.wait(60)
    assert widget.status == "Canceled" and run.status == "Canceled"


def test_child_runs_compared_by_a_primary_metric(ws: bai.Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "src"
    parent = submit(ws, folder, "print('sweep')\n")
    body = ("import sys\nfrom batchai_jupyter import Run\nacc = float(sys.argv[2])\n"
            "for s in range(3):\n    Run.get_context().log('acc', acc * (s + 1) / 3, step=s)\n"
            "Run.get_context().log('loss', 1 - acc)\n")
    kids = [submit(ws, folder, body, "--lr", str(acc), parent_id=parent.id, tags={"arch": f"a{i}"})
            for i, acc in enumerate((0.7, 0.9, 0.8))]
    with pytest.raises(bai.SpecError, match="goal.*maximize, minimize"):
        RunDetails(parent, goal="up")
    widget = RunDetails(parent, poll_seconds=0.05)
    assert widget.wait(90)
    assert all(k.status == "Completed" for k in kids)
    table = widget.children_view.table
    # default primary metric: the first one every child logs; columns: hyperparameters, tags
    assert table.primary == "acc" and table.goal == "maximize"
    assert table.columns == ["#", "run id", "status", "duration", "lr", "tag:arch", "acc"]
    assert table.best == kids[1].id and table.sort_by == "acc" and table.descending
    assert table.order() == [kids[1].id, kids[2].id, kids[0].id]
    table.descending = False  # what a second click on the header does
    assert table.order() == [kids[0].id, kids[2].id, kids[1].id]
    table.sort_by = "lr"
    assert table.order() == [kids[0].id, kids[2].id, kids[1].id]
    charts = widget.children_view.charts.value
    assert "acc per child run" in charts and "bai-parallel" in charts and "<svg" not in charts
    assert widget.children_view.layout.display is None
    assert "3/3 done" in widget.badge.value
    # a child opens in place, with its own live view, and the list comes back
    table._message(table, {"kind": "open", "id": kids[0].id}, [])
    child = widget.children_view.child
    assert child is not None and child.run.id == kids[0].id and child.status == "Completed"
    assert widget.children_view.list_box.layout.display == "none"
    widget.children_view.back.click()
    assert widget.children_view.child is None and widget.children_view.list_box.layout.display is None
    # the other goal: the lowest loss is the best
    low = RunDetails(parent, primary_metric="loss", start=False)
    assert low.children_view.table.goal == "minimize" and low.children_view.table.best == kids[1].id
    summary = parent._repr_html_()
    assert "★" in summary and "bai-parallel" in summary and "3/3 done" in summary


def test_after_a_restart_and_static_summary(ws: bai.Workspace, tmp_path: Path) -> None:
    run = submit(ws, tmp_path / "src", "print('kept line')\n")
    run.wait_for_completion()
    # a new process stands for a restarted kernel: it finds the run by id in the workspace
    code = textwrap.dedent(f"""
        import json, batchai_jupyter as bai
        from batchai_jupyter.notebook.widget import RunDetails
        w = RunDetails(bai.Workspace({str(ws.path)!r}).get_run({run.id!r}))
        w.wait(30)
        print(json.dumps([w.status, w.log_text, w.running]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=False)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["Completed", "kept line\n", False], out.stderr
    widget = RunDetails(run)
    bundle = widget._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == widget.model_id
    for html in (bundle["text/html"], run._repr_html_()):
        assert "Completed" in html and run.id in html and "kept line" in html


def test_display_is_registered_by_the_extension(ws: bai.Workspace, tmp_path: Path) -> None:
    from IPython.core.formatters import DisplayFormatter
    from IPython.core.interactiveshell import InteractiveShell

    from batchai_jupyter.notebook.display import display_run, run_mimebundle
    run = submit(ws, tmp_path / "src", "print('summary line')\n")
    run.wait_for_completion()
    # no extension (plain IPython, nbconvert): Run has only the static summary of view/
    assert not hasattr(run, "_ipython_display_") and not hasattr(run, "_repr_mimebundle_")
    data, _ = DisplayFormatter().format(run)
    assert "summary line" in data["text/html"] and data["text/plain"] == repr(run)
    # %load_ext batchai_jupyter: the widget display is registered for Run in that shell
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("batchai_jupyter")
    formatter = shell.display_formatter
    assert formatter.ipython_display_formatter.lookup(run) is display_run
    assert formatter.mimebundle_formatter.lookup(run) is run_mimebundle
    assert "text/html" in run_mimebundle(run)  # outside a kernel: the static summary only


def test_failed_run_shows_its_traceback(ws: bai.Workspace, tmp_path: Path) -> None:
    body = ("print('about to fail', flush=True)\n"
            "def deep():\n    raise ValueError('the real reason')\ndeep()\n")
    run = submit(ws, tmp_path / "src", body)
    widget = RunDetails(run, poll_seconds=0.05)
    assert widget.wait(60)
    assert widget.status == "Failed"
    assert widget.failure.layout.display is None
    failure = widget.failure.value
    assert "exited with code 1" in failure and "exit codes" in failure
    assert "ValueError: the real reason" in failure and "Traceback" in failure
    # the picker switched to the failing process's stderr
    assert widget.log_picker.value == "stderr.txt" and "ValueError: the real reason" in widget.log_text
    html = widget._repr_html_()
    assert 'data-status="Failed"' in html and "ValueError: the real reason" in html
    assert "exit codes" in html


def test_unknown_run_is_an_error(ws: bai.Workspace) -> None:
    with pytest.raises(bai.RunNotFound):
        RunDetails(bai.Run(ws, "nope"))


def test_jobs_and_the_engine_never_import_widgets() -> None:
    code = ("import sys, batchai_jupyter as bai, batchai_jupyter.engine, batchai_jupyter.node.agent\n"
            "bai.Run.get_context().log('x', 1)\n"
            "print(sorted(m for m in ('ipywidgets', 'IPython', 'tqdm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"

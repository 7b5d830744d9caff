"""The run view's Metrics and Children tabs and its "Clone to cell" action, in a real JupyterLab
and Chromium, for runs submitted from other processes (the Python API and the %%batchai_job magic).

One JupyterLab server and one browser page serve the whole module, as in test_lab_panel.py."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import LabSession
from tests.notebook.lab_server import run_command, screenshot, write_notebook

METRICS = textwrap.dedent("""
    import time
    import batchai_jupyter as bai
    run = bai.Run.get_context()
    for step in range(60):
        run.log("loss", 1.0 / (step + 1), step=step)
        time.sleep(0.5)
""")

CHILD = textwrap.dedent("""
    import sys
    import batchai_jupyter as bai
    lr = float(sys.argv[sys.argv.index("--lr") + 1])
    bai.Run.get_context().log("acc", lr * 2)
    if lr > 0.25:
        sys.exit("learning rate too high")
""")

SWEEP = """
import batchai_jupyter as bai
ws = bai.Workspace.from_config()
parent = ws.experiment("lab-sweep").submit(bai.JobSpec(source_directory="src", script="quiet.py"))
kids = parent.submit_children([bai.JobSpec(source_directory="src", script="child.py", arguments=["--lr", lr])
                               for lr in ("0.1", "0.2", "0.3")])
print(parent.id, *[k.id for k in kids])
"""

SUBMIT = """
import sys
import batchai_jupyter as bai
ws = bai.Workspace.from_config()
print(ws.experiment(sys.argv[1]).submit(bai.JobSpec(source_directory="src", script=sys.argv[2])).id)
"""

MAGIC = """
import sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.extension_manager.load_extension("batchai_jupyter")
line, body = sys.argv[1].split("\\n", 1)
print(ip.run_cell_magic("batchai_job", line.removeprefix("%%batchai_job "), body).id)
"""

#: the cell the clone must give back, character for character
CELL = ("%%batchai_job --cluster local --experiment lab-clone --env GREETING=hi -- --epochs 3\n"
        "import os, sys\nprint(os.environ['GREETING'], sys.argv[1:])\n")


LAB_FILES = {"src/metrics.py": METRICS, "src/quiet.py": "print('no metrics here')\n", "src/child.py": CHILD}
LAB_VIEWPORT = {"width": 1280, "height": 720}


class Lab:
    """The shared page and the project folder the server and every submitting process use."""

    def __init__(self, session: LabSession) -> None:
        self.session = session
        self.page = session.page
        self.root: Path = session.root

    def python(self, code: str, *args: str) -> list[str]:
        """Run `code` in a separate Python process in the project folder: its stdout's words."""
        return self.session.python(code, *args)

    def submit(self, experiment: str, script: str) -> str:
        return self.python(SUBMIT, experiment, script)[-1]

    def open_run(self, run_id: str) -> Any:
        """Open a run's view with the panel's command; the view's locator once its header shows."""
        run_command(self.page, "batchai-jupyter:open-run", {"id": run_id})
        view = self.page.locator(f"#batchai-run-{run_id} .bai-runview")
        view.locator(".bai-runview-header", has_text=run_id).wait_for(state="visible", timeout=20_000)
        return view


@pytest.fixture(scope="module")
def lab(lab_session: LabSession) -> Lab:
    return Lab(lab_session)


def in_viewport(page: Any, locator: Any) -> bool:
    """Whether the element's box lies inside the browser window (what a person can see)."""
    box = locator.bounding_box()
    size = page.viewport_size
    return (box is not None and box["width"] > 0 and box["height"] > 0 and box["x"] >= 0 and box["y"] >= 0
            and box["x"] + box["width"] <= size["width"] + 1 and box["y"] + box["height"] <= size["height"] + 1)


def last_step(chart: Any) -> int:
    match = re.search(r"last (\S+) at step (\d+)", chart.locator(".bai-metric-last").inner_text())
    assert match, chart.inner_text()
    return int(match.group(2))


def test_metrics_tab_charts_a_metric_live_and_labels_its_last_value(lab: Lab) -> None:
    run_id = lab.submit("lab-metrics", "metrics.py")
    view = lab.open_run(run_id)
    view.locator(".bai-tab", has_text="Metrics").click()
    chart = view.locator('.bai-metric-chart[data-metric="loss"]')
    chart.wait_for(state="visible", timeout=60_000)
    assert view.locator(".bai-runview-status").inner_text() == "Running", "the run ended before its chart showed"
    first = last_step(chart)
    lab.page.wait_for_function(
        """([id, step]) => {
            const el = document.querySelector(
                `#batchai-run-${id} .bai-metric-chart[data-metric="loss"] .bai-metric-last`);
            const m = el && /at step (\\d+)/.exec(el.textContent);
            return !!m && Number(m[1]) > step;
        }""", arg=[run_id, first], timeout=20_000)
    live = last_step(chart)
    print(f"metrics chart: last step {first}, then {live} while the run was running")
    assert in_viewport(lab.page, chart.locator("svg"))
    screenshot(lab.page, "lab_runview_metrics_live.png")
    view.locator(".bai-runview-status", has_text=re.compile("^Completed$")).wait_for(state="visible", timeout=90_000)
    lab.page.wait_for_function(
        """id => /at step 59$/.test(document.querySelector(
            `#batchai-run-${id} .bai-metric-chart[data-metric="loss"] .bai-metric-last`).textContent)""",
        arg=run_id, timeout=20_000)
    assert chart.locator(".bai-metric-last").inner_text() == "last 0.0167 at step 59"
    assert chart.locator(".bai-metric-lastmark text").text_content() == "0.0167"  # the axis label of the last value
    assert len(chart.locator(".bai-metric-line").get_attribute("points").split()) == 60
    y_labels = chart.locator(".bai-metric-ytick text").all_text_contents()
    assert y_labels and all(re.fullmatch(r"[0-9.e+-]+", t) for t in y_labels), y_labels
    assert chart.locator(".bai-metric-axis").text_content() == "step"
    screenshot(lab.page, "lab_runview_metrics_done.png")


def test_metrics_tab_of_a_run_without_metrics_says_so(lab: Lab) -> None:
    run_id = lab.submit("lab-quiet", "quiet.py")
    view = lab.open_run(run_id)
    view.locator(".bai-runview-status", has_text=re.compile("^Completed$")).wait_for(state="visible", timeout=90_000)
    view.locator(".bai-tab", has_text="Metrics").click()
    empty = view.locator(".bai-metrics-empty", has_text="This run logged no metrics.")
    empty.wait_for(state="visible", timeout=15_000)
    assert in_viewport(lab.page, empty)
    assert view.locator(".bai-metric-chart").count() == 0


def test_children_tab_counts_lists_and_opens_the_children(lab: Lab) -> None:
    parent, *kids = lab.python(SWEEP)
    view = lab.open_run(parent)
    view.locator(".bai-tab", has_text="Children").click()
    chips = view.locator(".bai-children-chips")
    chips.locator('[data-status="Completed"]', has_text="Completed 2").wait_for(state="visible", timeout=120_000)
    chips.locator('[data-status="Failed"]', has_text="Failed 1").wait_for(state="visible", timeout=60_000)
    table = view.locator(".bai-runview-children")
    assert in_viewport(lab.page, table)
    header = table.locator("th.bai-children-metric")
    header.wait_for(state="visible", timeout=15_000)
    assert header.inner_text().startswith("acc")
    values = {kid: table.locator(f'tr[data-run-id="{kid}"] .bai-children-value').inner_text() for kid in kids}
    assert values == {kids[0]: "0.2", kids[1]: "0.4", kids[2]: "0.6"}, values
    assert table.locator(f'tr[data-run-id="{kids[2]}"]').inner_text().count("Failed") == 1
    chips.locator('[data-status="Failed"]').click()  # the chip filters the table
    assert table.locator("tbody tr").count() == 1
    screenshot(lab.page, "lab_runview_children.png")
    table.locator(f'tr[data-run-id="{kids[2]}"]').click()
    child = lab.page.locator(f"#batchai-run-{kids[2]} .bai-runview")
    child.locator(".bai-runview-header", has_text=kids[2]).wait_for(state="visible", timeout=15_000)
    assert child.locator(".bai-runview-status").inner_text() == "Failed"


def notebook_cells(page: Any, path: str) -> list[str]:
    return page.evaluate("""path => {
        for (const w of window.jupyterapp.shell.widgets('main')) {
            if (w.context && w.context.path === path) {
                return w.content.model.sharedModel.cells.map(c => c.getSource());
            }
        }
        return null;
    }""", path)


def test_clone_puts_the_original_cell_below_the_active_cell(lab: Lab) -> None:
    run_id = lab.python(MAGIC, CELL)[-1]
    write_notebook(lab.root / "clone.ipynb", ["x = 1", "y = 2"])
    page = lab.page
    run_command(page, "docmanager:open", {"path": "clone.ipynb"})
    first = page.locator(".jp-NotebookPanel .jp-Cell").first
    first.wait_for(state="visible", timeout=30_000)
    first.locator(".jp-InputPrompt").click()  # the first cell is the active one
    view = lab.open_run(run_id)
    view.locator(".bai-runview-clone").click()
    page.wait_for_function("""() => {
        const w = window.jupyterapp.shell.currentWidget;
        return !!w && w.context && w.context.path === 'clone.ipynb' && w.content.model.sharedModel.cells.length === 3;
    }""", timeout=15_000)
    cells = notebook_cells(page, "clone.ipynb")
    assert cells == ["x = 1", CELL, "y = 2"], cells
    new = page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(1)
    new.locator(".jp-InputArea", has_text="%%batchai_job --cluster local").wait_for(state="visible", timeout=10_000)
    assert in_viewport(page, new.locator(".jp-InputArea"))
    screenshot(page, "lab_runview_clone.png")


def test_clone_with_no_notebook_open_makes_a_new_one(lab: Lab) -> None:
    run_id = lab.python(MAGIC, CELL)[-1]
    page = lab.page
    page.evaluate("""() => {
        for (const w of [...window.jupyterapp.shell.widgets('main')]) {
            if (w.context && w.context.path.endsWith('.ipynb')) { w.dispose(); }
        }
    }""")
    view = lab.open_run(run_id)
    view.locator(".bai-runview-clone").click()
    page.wait_for_function("""() => {
        const w = window.jupyterapp.shell.currentWidget;
        return !!w && w.context && /^Untitled.*\\.ipynb$/.test(w.context.path)
            && w.content.model.sharedModel.cells[0].getSource().startsWith('%%batchai_job');
    }""", timeout=60_000)
    path = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")
    assert notebook_cells(page, path) == [CELL]
    cell = page.locator(".jp-NotebookPanel:visible .jp-Cell").first.locator(".jp-InputArea")
    cell.wait_for(state="visible", timeout=10_000)
    assert in_viewport(page, cell) and "%%batchai_job --cluster local" in cell.inner_text()
    screenshot(page, "lab_runview_clone_new_notebook.png")

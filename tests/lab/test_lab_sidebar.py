"""The sidebar in a real JupyterLab and Chromium, with ~300 runs in the history: pages read with
the cursor, filters and search answered by the server, experiment groups that collapse, a
parent's children, cluster cards that expand to their nodes and resize, and the cell-toolbar
button that submits a notebook cell as a job.

One JupyterLab server and one page serve the whole module; the tests run in order (the filters
one leaves the list unfiltered for the next)."""
from __future__ import annotations

import re
from typing import Any

import pytest

import batchai_jupyter as bai
from batchai_jupyter.cluster_config import ClusterConfig
from batchai_jupyter.records import NewRun
from tests.lab.conftest import PANEL_TAB, LabSession
from tests.notebook.lab_server import KERNEL_READY, run_command, screenshot, write_notebook

LAB_VIEWPORT = {"width": 1280, "height": 900}
COUNT = 300
PARENT = "sweep-b_parent"
KIDS = [f"sweep-b_parent_{i}" for i in range(3)]
CELL = 'print("hello from a cell job")'


def experiment_of(i: int) -> str:
    return "sweep-b" if i % 3 == 0 else "sweep-a"


def cluster_of(i: int) -> str:
    return "gpu" if i % 5 == 0 else "local"


def lr_of(i: int) -> str:
    return "0.1" if i % 10 == 0 else "0.2"


def fill(ws: bai.Workspace) -> None:
    """COUNT finished top-level runs (two experiments interleaved, two clusters, a tag), then a
    parent with three children, newest: straight into the history, as the server tests do."""
    ws.history.put_cluster_config(ClusterConfig.new("gpu", backend="local", min_nodes=0, max_nodes=1))
    base: dict[str, Any] = {"spec": {"command": "true"}, "snapshot": None, "priority": 1, "properties": {}}
    rows = [NewRun(**base, id=f"run_{i:04d}", experiment=experiment_of(i), cluster=cluster_of(i),
                   tags={"lr": lr_of(i)}, parent_id=None, status="Failed" if i % 7 == 0 else "Completed")
            for i in range(COUNT)]
    rows.append(NewRun(**base, id=PARENT, experiment="sweep-b", cluster="local", tags={}, parent_id=None,
                       status="Completed"))
    rows += [NewRun(**base, id=kid, experiment="sweep-b", cluster="local", tags={}, parent_id=PARENT,
                    status="Completed") for kid in KIDS]
    ws.history.insert_runs(rows)
    ws.history.put_node("gpu", "gpu-0", "idle", address="10.0.0.5", gpus=2)
    ws.history.put_node("gpu", "gpu-1", "unusable", address="10.0.0.6", error="disk full on /var/lib/batchai")
    ws.history.put_node("gpu", "gpu-2", "running", address="10.0.0.7", run_id="run_0005", gpus=2)


@pytest.fixture(scope="module")
def lab(lab_session: LabSession) -> LabSession:
    fill(lab_session.workspace)
    # a page loaded after the runs ended: their failures are history, not notifications
    lab_session.page.wait_for_timeout(1500)
    lab_session.page.reload()
    lab_session.page.locator(PANEL_TAB).wait_for(state="visible", timeout=60_000)
    return lab_session


def rows(panel: Any) -> Any:
    return panel.locator(".bai-run-list .bai-run-row:visible")


def shown_text(panel: Any) -> str:
    return panel.locator(".bai-run-shown").inner_text()


def wait_shown(panel: Any, text: str) -> None:
    panel.locator(".bai-run-shown", has_text=re.compile(rf"^{re.escape(text)}$")).wait_for(
        state="visible", timeout=15_000)


def test_first_page_shows_and_load_more_reads_the_next(lab: LabSession) -> None:
    panel = lab.open_panel()
    wait_shown(panel, f"50 of {COUNT + 1}")
    assert rows(panel).count() == 50
    newest = panel.locator(f'.bai-run-row[data-run-id="{PARENT}"]')
    assert newest.is_visible()  # newest first
    more = panel.locator(".bai-run-load-more")
    more.scroll_into_view_if_needed()
    assert more.is_visible()
    more.click()
    wait_shown(panel, f"100 of {COUNT + 1}")
    assert rows(panel).count() == 100
    ids = rows(panel).evaluate_all("els => els.map(e => e.dataset.runId)")
    assert len(set(ids)) == 100  # the second page follows the first, no row twice
    assert "run_0250" in ids and "run_0201" in ids and "run_0200" not in ids
    screenshot(lab.page, "lab_sidebar_load_more.png")


def late(run_id: str, experiment: str) -> NewRun:
    return NewRun(id=run_id, experiment=experiment, cluster="local", spec={"command": "true"}, snapshot=None,
                  tags={}, priority=1, parent_id=None, properties={}, status="Completed")


def test_a_live_refresh_keeps_the_loaded_pages_and_the_filter(lab: LabSession) -> None:
    panel = lab.open_panel()
    wait_shown(panel, f"100 of {COUNT + 1}")
    lab.workspace.history.insert_runs([late("late_run", "sweep-a")])
    panel.locator('.bai-run-row[data-run-id="late_run"]').wait_for(state="visible", timeout=15_000)
    wait_shown(panel, f"100 of {COUNT + 2}")  # the two pages read again, not the first alone
    assert rows(panel).count() == 100
    sweep_a = sum(1 for i in range(COUNT) if experiment_of(i) == "sweep-a") + 1
    panel.locator(".bai-filter-experiment").select_option("sweep-a")
    wait_shown(panel, f"50 of {sweep_a}")
    panel.locator(".bai-run-load-more").click()
    wait_shown(panel, f"100 of {sweep_a}")
    lab.workspace.history.insert_runs([late("late_b", "sweep-b"), late("late_a", "sweep-a")])
    panel.locator('.bai-run-row[data-run-id="late_a"]').wait_for(state="visible", timeout=15_000)
    wait_shown(panel, f"100 of {sweep_a + 1}")
    assert panel.locator('.bai-run-row[data-run-id="late_b"]').count() == 0  # still filtered
    assert panel.locator(".bai-filter-experiment").input_value() == "sweep-a"
    assert rows(panel).count() == 100
    panel.locator(".bai-filter-experiment").select_option("")
    wait_shown(panel, f"50 of {COUNT + 4}")


def test_filters_and_search_narrow_the_list(lab: LabSession) -> None:
    panel = lab.open_panel()
    sweep_b = sum(1 for i in range(COUNT) if experiment_of(i) == "sweep-b") + 2  # the parent, late_b
    panel.locator(".bai-filter-experiment").select_option("sweep-b")
    wait_shown(panel, f"50 of {sweep_b}")
    experiments = set(rows(panel).evaluate_all("els => els.map(e => e.closest('.bai-run-group').dataset.experiment)"))
    assert experiments == {"sweep-b"}
    assert panel.locator('.bai-run-group[data-experiment="sweep-a"]').count() == 0
    panel.locator(".bai-filter-cluster").select_option("gpu")
    both = sum(1 for i in range(COUNT) if experiment_of(i) == "sweep-b" and cluster_of(i) == "gpu")
    wait_shown(panel, f"{both} of {both}")
    assert panel.locator(".bai-run-load-more").count() == 0  # one page holds them all
    screenshot(lab.page, "lab_sidebar_filtered.png")
    panel.locator(".bai-filter-experiment").select_option("")
    panel.locator(".bai-filter-cluster").select_option("")
    tagged = sum(1 for i in range(COUNT) if lr_of(i) == "0.1")
    panel.locator(".bai-filter-tag").select_option("lr:0.1")
    wait_shown(panel, f"{tagged} of {tagged}")
    assert "lr=0.1 (30)" in panel.locator(".bai-filter-tag option:checked").inner_text()
    panel.locator(".bai-filter-tag").select_option("")
    panel.locator(".bai-run-search").fill("run_012")
    wait_shown(panel, "10 of 10")  # run_0120 .. run_0129
    assert sorted(rows(panel).evaluate_all("els => els.map(e => e.dataset.runId)")) == [
        f"run_{i:04d}" for i in range(120, 130)]
    panel.locator(".bai-run-search").fill("")
    wait_shown(panel, f"50 of {COUNT + 4}")  # a new filter starts again from one page


def test_an_experiment_group_collapses_and_children_show_under_their_parent(lab: LabSession) -> None:
    panel = lab.open_panel()
    wait_shown(panel, f"50 of {COUNT + 4}")
    group_a = panel.locator('.bai-run-group[data-experiment="sweep-a"]')
    head = group_a.locator(".bai-run-group-head")
    in_a = group_a.locator(".bai-run-row").count()
    assert in_a > 20 and "sweep-a" in head.inner_text()
    head.click()
    group_a.locator(".bai-run-row").first.wait_for(state="detached", timeout=5_000)
    assert head.is_visible() and head.get_attribute("aria-expanded") == "false"
    assert rows(panel).count() == 50 - in_a  # sweep-b's rows stay
    head.click()
    assert group_a.locator(".bai-run-row").count() == in_a
    parent = panel.locator(f'.bai-run-row[data-run-id="{PARENT}"]')
    toggle = parent.locator(".bai-run-expand")
    assert toggle.inner_text().strip().endswith("3")
    toggle.click()
    kids = panel.locator(".bai-run-row.bai-run-child")
    kids.first.wait_for(state="visible", timeout=10_000)
    assert kids.evaluate_all("els => els.map(e => e.dataset.runId)") == KIDS  # oldest first, under the parent
    parent_box, first_kid = parent.bounding_box(), kids.first.bounding_box()
    assert first_kid["y"] > parent_box["y"] and first_kid["x"] >= parent_box["x"]
    screenshot(lab.page, "lab_sidebar_groups_children.png")
    toggle.click()
    kids.first.wait_for(state="detached", timeout=5_000)


def test_a_cluster_card_expands_to_its_nodes(lab: LabSession) -> None:
    panel = lab.open_panel()
    card = panel.locator('.bai-cluster-card[data-cluster="gpu"]')
    card.wait_for(state="visible", timeout=10_000)
    card.locator(".bai-cluster-expand").click()
    broken = card.locator('.bai-node-row[data-node-id="gpu-1"]')
    broken.wait_for(state="visible", timeout=10_000)
    assert "unusable" in broken.inner_text() and "disk full on /var/lib/batchai" in broken.inner_text()
    busy = card.locator('.bai-node-row[data-node-id="gpu-2"]')
    assert "running" in busy.inner_text() and busy.locator(".bai-node-run").inner_text() == "run_0005"
    assert "idle" in card.locator('.bai-node-row[data-node-id="gpu-0"]').inner_text()
    screenshot(lab.page, "lab_sidebar_nodes.png")
    busy.locator(".bai-node-run").click()  # the node's run opens in its view
    lab.page.locator("#batchai-run-run_0005 .bai-runview-header", has_text="run_0005").wait_for(
        state="visible", timeout=15_000)


def test_resize_sets_min_and_max_and_the_card_shows_them(lab: LabSession) -> None:
    panel = lab.open_panel()
    card = panel.locator('.bai-cluster-card[data-cluster="gpu"]')
    assert card.locator(".bai-cluster-size").inner_text() == "0–1 nodes"
    card.locator(".bai-cluster-resize").click()
    card.locator(".bai-resize-max").fill("1")
    card.locator(".bai-resize-min").fill("2")
    card.locator(".bai-resize-apply").click()
    error = card.locator(".bai-error")
    error.wait_for(state="visible", timeout=10_000)
    assert error.inner_text().startswith("min_nodes:")  # the server's typed error, field named
    card.locator(".bai-resize-min").fill("0")
    card.locator(".bai-resize-max").fill("3")
    card.locator(".bai-resize-apply").click()
    card.locator(".bai-cluster-size", has_text="0–3 nodes").wait_for(state="visible", timeout=10_000)
    assert card.locator(".bai-resize-form").count() == 0 and card.locator(".bai-error").count() == 0
    cluster = lab.workspace.cluster("gpu")
    assert (cluster.min_nodes, cluster.max_nodes) == (0, 3)
    screenshot(lab.page, "lab_sidebar_resize.png")


def test_the_cell_toolbar_button_runs_the_cell_as_a_job(lab: LabSession) -> None:
    page = lab.page
    write_notebook(lab.root / "job.ipynb", [CELL])
    run_command(page, "docmanager:open", {"path": "job.ipynb"})
    cell = page.locator(".jp-NotebookPanel:visible .jp-Cell").first
    cell.wait_for(state="visible", timeout=30_000)
    cell.locator(".jp-InputPrompt").click()  # the cell is the active one
    page.wait_for_function(KERNEL_READY, timeout=90_000)
    button = cell.locator('.jp-cell-toolbar [data-command="batchai:run-cell"]')
    button.wait_for(state="visible", timeout=15_000)
    before = {r["id"] for r in lab.workspace.history.run_rows()}
    button.click()
    source = cell.locator(".jp-InputArea")
    source.locator(".cm-line", has_text="%%batchai_job").wait_for(state="visible", timeout=10_000)
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCell.model.sharedModel"
                         ".getSource()") == f"%%batchai_job\n{CELL}"
    run_id = _new_run(lab, before)
    panel = lab.open_panel()
    row = panel.locator(f'.bai-run-row[data-run-id="{run_id}"]')
    row.wait_for(state="visible", timeout=15_000)
    panel.locator(f'.bai-run-row[data-run-id="{run_id}"]', has_text="Completed").wait_for(
        state="visible", timeout=120_000)
    run = lab.workspace.get_run(run_id)
    assert "".join(run.stream(follow=False)).strip() == "hello from a cell job"  # the user's cell, as it was
    screenshot(page, "lab_sidebar_run_cell.png")


def _new_run(lab: LabSession, before: set[str], timeout: float = 60) -> str:
    """The id of the run the cell submitted (the one not in the history before)."""
    page = lab.page
    for _ in range(int(timeout * 4)):
        new = [r["id"] for r in lab.workspace.history.run_rows() if r["id"] not in before]
        if new:
            assert len(new) == 1, new
            return str(new[0])
        page.wait_for_timeout(250)
    raise AssertionError("the cell submitted no run")


def test_the_command_palette_runs_a_magic_cell_as_it_is(lab: LabSession) -> None:
    page = lab.page
    source = '%%batchai_job --experiment from-palette\nprint("from the palette")'
    write_notebook(lab.root / "palette.ipynb", [source])
    run_command(page, "docmanager:open", {"path": "palette.ipynb"})
    cell = page.locator(".jp-NotebookPanel:visible .jp-Cell").first
    cell.locator(".cm-line", has_text="from the palette").wait_for(state="visible", timeout=30_000)
    cell.locator(".jp-InputPrompt").click()
    page.wait_for_function(KERNEL_READY, timeout=90_000)
    before = {r["id"] for r in lab.workspace.history.run_rows()}
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette-input")
    palette.wait_for(state="visible", timeout=10_000)
    palette.fill("Run cell as a Batch AI job")
    item = page.locator(".lm-CommandPalette-item", has_text="Run cell as a Batch AI job")
    item.wait_for(state="visible", timeout=10_000)
    item.click()
    run_id = _new_run(lab, before)
    row = lab.open_panel().locator(f'.bai-run-row[data-run-id="{run_id}"]', has_text="Completed")
    row.wait_for(state="visible", timeout=120_000)
    assert lab.workspace.get_run(run_id).experiment.name == "from-palette"
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCell.model.sharedModel"
                         ".getSource()") == source  # a cell with the magic is left as it is
    screenshot(page, "lab_sidebar_palette.png")

"""The run list in a real JupyterLab and Chromium with thousands of loaded rows: only the rows
near the viewport are in the DOM, scrolling (the mouse wheel) shows the later ones where a person
looks, its end reads the next page, and a running run's sparkline grows as it logs its metric.

One JupyterLab server and one page serve the module; the tests run in order (the second one
submits a run above the rows the first one loaded)."""
from __future__ import annotations

import re
import textwrap
import time
from typing import Any

import pytest

from batchai_jupyter.records import NewRun
from tests.lab.conftest import LabSession
from tests.notebook.lab_server import screenshot

COUNT = 2400
WANTED = 2000
ITEM = 24  # px, RunWindow.ITEM_HEIGHT
LAB_VIEWPORT = {"width": 1280, "height": 900}
LAB_FILES = {"src/metrics.py": textwrap.dedent("""
    import time
    import batchai_jupyter as bai
    run = bai.Run.get_context()
    for step in range(60):
        run.log("loss", 1.0 / (step + 1), step=step)
        time.sleep(0.5)
""")}
SUBMIT = """
import batchai_jupyter as bai
ws = bai.Workspace.from_config()
print(ws.experiment("live-metric").submit(bai.JobSpec(source_directory="src", script="metrics.py")).id)
"""


def experiment_of(i: int) -> str:
    return "big-b" if i % 4 == 0 else "big-a"


@pytest.fixture(scope="module")
def lab(lab_session: LabSession) -> LabSession:
    base: dict[str, Any] = {"cluster": "local", "spec": {"command": "true"}, "snapshot": None, "tags": {},
                            "priority": 1, "parent_id": None, "properties": {}, "status": "Completed"}
    lab_session.workspace.history.insert_runs(
        [NewRun(**base, id=f"run_{i:05d}", experiment=experiment_of(i)) for i in range(COUNT)])
    lab_session.page.reload()
    return lab_session


def shown(panel: Any) -> int:
    match = re.match(r"(\d+) of (\d+)", panel.locator(".bai-run-shown").inner_text())
    assert match, panel.locator(".bai-run-shown").inner_text()
    return int(match.group(1))


def wait_until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def expected_items(loaded: int) -> list[str]:
    """What the list holds, top to bottom: one header per experiment (the one with the newest
    run first), its loaded rows newest first."""
    ids = list(range(COUNT - 1, COUNT - 1 - loaded, -1))
    order = [experiment_of(ids[0])] + [e for e in ("big-a", "big-b") if e != experiment_of(ids[0])]
    return [x for e in order for x in [f"head:{e}", *(f"run_{i:05d}" for i in ids if experiment_of(i) == e)]]


def test_thousands_of_loaded_rows_keep_few_in_the_dom(lab: LabSession) -> None:
    panel = lab.open_panel()
    wait_until("the first page", lambda: panel.locator(".bai-run-shown", has_text=f"50 of {COUNT}").count())
    more = panel.locator(".bai-run-load-more")
    while shown(panel) < 200:  # a short list is drawn whole; Load more lengthens it
        before = shown(panel)
        more.click()
        wait_until("the next page", lambda b=before: shown(panel) > b)
    listing = panel.locator(".bai-run-list-windowed")
    listing.wait_for(state="visible", timeout=10_000)
    listing.hover()
    while shown(panel) < WANTED:  # the wheel to the end of the list reads the next page
        before = shown(panel)
        lab.page.mouse.wheel(0, 20_000)
        wait_until(f"more than {before} rows after scrolling to the end", lambda b=before: shown(panel) > b, 30)
    loaded = shown(panel)
    assert more.is_visible()  # the button stays for those who prefer it
    in_dom = panel.locator(".bai-run-list .bai-run-row").count()
    print(f"{loaded} rows loaded, {in_dom} row elements in the DOM")
    assert in_dom < 120 < loaded and int(listing.get_attribute("data-items") or 0) == loaded + 2

    listing.evaluate("el => { el.scrollTop = 0; }")
    lab.page.mouse.wheel(0, 1500 * ITEM)  # far down, as a person scrolls
    items = expected_items(loaded)

    def row_in_the_middle() -> tuple[str, str] | None:
        got = listing.evaluate("""el => {
            const box = el.getBoundingClientRect();
            const at = document.elementFromPoint(box.left + 40, box.top + box.height / 2);
            const row = at && at.closest('.bai-run-row');
            const middle = Math.floor((el.scrollTop + el.clientHeight / 2) / 24);
            return row && el.scrollTop > 1000 * 24 ? [row.dataset.runId, middle] : null;
        }""")
        return None if got is None else (got[0], items[got[1]])

    seen, expected = wait_until("the list scrolled far down", row_in_the_middle, 10)
    assert seen == expected and items.index(seen) > 1000  # the row there is the one at that place
    row = panel.locator(f'.bai-run-row[data-run-id="{seen}"]')
    assert row.is_visible() and inside(row.bounding_box(), listing.bounding_box())
    assert panel.locator(f'.bai-run-row[data-run-id="{items[1]}"]').count() == 0  # the top left the DOM
    screenshot(lab.page, "lab_runlist_windowed.png")


def inside(inner: dict[str, float] | None, outer: dict[str, float] | None, across: bool = False) -> bool:
    """Whether `inner` lies within `outer` top to bottom (and left to right with `across`)."""
    assert inner and outer
    axes = [("y", "height"), ("x", "width")] if across else [("y", "height")]
    return all(outer[a] <= inner[a] and inner[a] + inner[s] <= outer[a] + outer[s] + 1 for a, s in axes)


def test_a_running_run_shows_a_sparkline_that_grows(lab: LabSession) -> None:
    panel = lab.open_panel()
    listing = panel.locator(".bai-run-list")
    listing.evaluate("el => { el.scrollTop = 0; }")
    (run_id,) = lab.python(SUBMIT, timeout=60)
    spark = panel.locator(f'.bai-run-row[data-run-id="{run_id}"] svg.bai-spark')
    spark.wait_for(state="visible", timeout=60_000)
    first = int(spark.get_attribute("data-count") or 0)
    assert spark.get_attribute("data-metric") == "loss"
    later = wait_until("more points in the sparkline",
                       lambda: (n := int(spark.get_attribute("data-count") or 0)) > first and n, 30)
    points = int(spark.get_attribute("data-points") or 0)
    assert 2 <= points <= 30 and later > first
    assert "Running" in panel.locator(f'.bai-run-row[data-run-id="{run_id}"]').inner_text()
    box = spark.bounding_box()
    assert box and box["width"] > 20 and box["height"] > 8
    assert inside(box, listing.bounding_box(), across=True)  # not cut off by the narrow sidebar
    screenshot(lab.page, "lab_runlist_sparkline.png")

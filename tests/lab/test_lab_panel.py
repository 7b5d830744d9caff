"""The JupyterLab extension in a real JupyterLab and Chromium: what a person sees of the panel,
the run view and the end-of-run notifications, for runs submitted from another process.

One JupyterLab server and one browser page serve the whole module; the tests run in order
(the run the first one submits is opened, followed and cancelled by the next two)."""
from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.lab.conftest import LabSession
from tests.notebook.lab_server import screenshot

SUBMIT = """
import sys, time
import batchai_jupyter as bai
ws = bai.Workspace.from_config()
run = ws.experiment(sys.argv[1]).submit(bai.JobSpec(source_directory="src", script=sys.argv[2]))
print(run.id, time.time(), flush=True)
"""

LINES = textwrap.dedent("""
    import time
    for n in range(1, 151):
        print(f"line {n}", flush=True)
        time.sleep(0.2)
""")

FAILS = textwrap.dedent("""
    import time
    print("about to fail", flush=True)
    time.sleep(1)
    raise RuntimeError("the data is not there")
""")


LAB_FILES = {"src/lines.py": LINES, "src/fails.py": FAILS}
LAB_VIEWPORT = {"width": 1280, "height": 640}


class Lab:
    """The shared page and the project folder the server (and every submitting process) uses."""

    def __init__(self, session: LabSession) -> None:
        self.session = session
        self.page = session.page
        self.root: Path = session.root
        self.runs: dict[str, str] = {}

    def submit(self, experiment: str, script: str) -> tuple[str, float]:
        """Submit from a separate Python process in the project folder: (run id, when submit returned)."""
        run_id, returned = self.session.python(SUBMIT, experiment, script, timeout=60)
        return run_id, float(returned)


@pytest.fixture(scope="module")
def lab(lab_session: LabSession) -> Lab:
    return Lab(lab_session)


def test_panel_icon_opens_the_batch_ai_panel(lab: Lab) -> None:
    lab.page.locator('.jp-SideBar [data-id="batchai-jupyter:panel"]').click()
    lab.page.locator(".bai-panel .bai-section-title", has_text="Runs").wait_for(state="visible")
    lab.page.locator(".bai-panel .bai-cluster-card", has_text="local").wait_for(state="visible", timeout=10_000)
    screenshot(lab.page, "lab_panel.png")


def test_a_run_submitted_elsewhere_appears_in_the_run_list(lab: Lab) -> None:
    run_id, returned = lab.submit("lab-lines", "lines.py")
    row = lab.page.locator(f'.bai-panel .bai-run-row[data-run-id="{run_id}"]')
    row.wait_for(state="visible", timeout=10_000)
    seen_after = time.time() - returned
    print(f"run row visible {seen_after:.2f} s after submit returned")
    assert row.locator(".bai-run-id").inner_text() == run_id
    assert "lab-lines" in row.inner_text()
    screenshot(lab.page, "lab_run_row.png")
    lab.runs["lines"] = run_id
    assert seen_after < 3


def _tail(page: Any) -> tuple[int, dict[str, float], dict[str, float]]:
    """The number of the newest log line shown, its box and the log view's box."""
    last = page.locator(".bai-runview .bai-log-view .bai-log-line").last
    text = last.inner_text()
    match = re.search(r"line (\d+)", text)
    assert match, text
    line, box = last.bounding_box(), page.locator(".bai-runview .bai-log-view").bounding_box()
    assert line is not None and box is not None
    return int(match.group(1)), line, box


def _inside(line: dict[str, float] | None, box: dict[str, float]) -> bool:
    """Whether a line's box lies within the log view's visible box (a pixel of rounding allowed)."""
    return line is not None and box["y"] - 1 <= line["y"] and line["y"] + line["height"] <= box["y"] + box["height"] + 1


def test_the_run_view_follows_the_log_live(lab: Lab) -> None:
    run_id = lab.runs.get("lines")
    if run_id is None:
        pytest.skip(reason="the run of the previous test was not submitted, so there is no run to follow")
    page = lab.page
    page.locator(f'.bai-panel .bai-run-row[data-run-id="{run_id}"]').click()
    view = page.locator(f"#batchai-run-{run_id} .bai-runview")
    view.locator(".bai-runview-header", has_text=run_id).wait_for(state="visible", timeout=15_000)
    view.locator(".bai-runview-status", has_text="Running").wait_for(state="visible", timeout=30_000)
    view.locator(".bai-tab", has_text="Logs").click()
    view.locator(".bai-log-line", has_text=re.compile(r"line \d+")).first.wait_for(state="visible", timeout=20_000)
    # until the log is taller than its view, so following the tail means scrolling
    page.wait_for_function("""() => {
        const el = document.querySelector('.bai-runview .bai-log-view');
        return !!el && el.scrollHeight > el.clientHeight + 3 * 18;
    }""", timeout=30_000)
    seen: list[int] = []
    for _ in range(3):
        number, line, box = _tail(page)
        assert _inside(line, box), (number, line, box)
        seen.append(number)
        time.sleep(1.5)
    print(f"newest log line shown, 1.5 s apart: {seen}")
    first = page.locator(".bai-runview .bai-log-view .bai-log-line", has_text=re.compile(r"^line 1$"))
    assert first.count() == 0 or not _inside(first.bounding_box(), _tail(page)[2])  # scrolled past it
    assert seen == sorted(seen) and seen[-1] > seen[0], seen
    assert view.locator(".bai-runview-status").inner_text() == "Running"
    screenshot(page, "lab_run_logs.png")


def test_cancel_in_the_run_view_shows_canceled(lab: Lab) -> None:
    run_id = lab.runs.get("lines")
    if run_id is None:
        pytest.skip(reason="the run of the previous test was not submitted, so there is no run to follow")
    view = lab.page.locator(f"#batchai-run-{run_id} .bai-runview")
    view.locator(".bai-runview-cancel").click()
    started = time.monotonic()
    view.locator(".bai-runview-status", has_text=re.compile(r"^Canceled$")).wait_for(state="visible", timeout=20_000)
    print(f"status Canceled {time.monotonic() - started:.2f} s after the click")
    assert view.locator(".bai-runview-cancel").count() == 0  # a finished run has nothing to cancel
    screenshot(lab.page, "lab_run_canceled.png")


def test_a_failed_run_raises_a_notification_that_stays(lab: Lab) -> None:
    run_id, _ = lab.submit("lab-fails", "fails.py")
    page = lab.page
    toast = page.locator(".Toastify__toast", has_text=run_id).filter(has_text=re.compile("failed", re.IGNORECASE))
    toast.wait_for(state="visible", timeout=60_000)
    time.sleep(6)
    assert toast.is_visible(), "the Failed notification closed by itself"
    assert toast.get_by_role("button", name="Open logs").is_visible()
    screenshot(page, "lab_run_failed_toast.png")
    toast.get_by_role("button", name="Open logs").click()
    page.locator(f"#batchai-run-{run_id} .bai-runview-status", has_text="Failed").wait_for(state="visible",
                                                                                            timeout=15_000)

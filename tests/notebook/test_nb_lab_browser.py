"""The widget is seen to render: JupyterLab on loopback, driven by headless Debian Chromium.

Runs the quickstart recipe in a real JupyterLab and checks, in the page, that the job cell's
display ends as the run's static summary (Completed, the job's own log lines, its chart as an
image); the saved notebook keeps that summary. A screenshot is left in the test's temp dir.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.notebook.lab_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    KERNEL_READY,
    jupyter_server,
    need_browser,
    run_command,
)

REPO = Path(__file__).resolve().parents[2]
JOB_MAGIC = "%%batchai_job"  # the quickstart's job cell starts with it

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab serving a copy of the quickstart recipe; stopped (with its kernels) after."""
    need_browser()
    root = tmp_path / "lab"
    root.mkdir()
    for name in ("00-quickstart.ipynb", ".amlignore"):
        shutil.copy(REPO / "recipes" / name, root / name)
    with jupyter_server(tmp_path, root, "lab") as (base, token):
        yield f"{base}/lab/tree/00-quickstart.ipynb?token={token}", root


def test_quickstart_widget_renders_in_jupyterlab(lab: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright
    url, root = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            page.wait_for_function("() => window.jupyterapp !== undefined", timeout=30_000)
            page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook is the current widget
            page.wait_for_function(KERNEL_READY, timeout=90_000)
            run_command(page, "notebook:run-all-cells")
            cell = page.locator(".jp-Notebook .jp-CodeCell", has_text=JOB_MAGIC).first
            # live while it runs, then the display becomes the static summary
            summary = cell.locator(".bai-run-summary")
            expect(summary.locator('.bai-status[data-status="Completed"]')).to_be_visible(timeout=120_000)
            log = summary.locator(".bai-log")
            expect(log).to_contain_text("epoch 4 loss 0.2", timeout=30_000)
            expect(log).to_contain_text("training done")
            expect(summary.locator(".bai-properties")).to_contain_text("quickstart")
            expect(summary.locator(".bai-chart[data-metric='loss'] img")).to_be_visible()
            expect(cell.locator(".bai-run-details")).to_have_count(0)
            # the last cell stops the engine: the notebook ran top to bottom
            last = page.locator(".jp-Notebook .jp-Cell").last
            expect(last.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=120_000)
            expect(page.locator(".jp-Notebook .jp-Cell .jp-InputPrompt", has_text="[*]")).to_have_count(0)
            expect(page.locator(".jp-Notebook .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                                has_text="Error")).to_have_count(0)
            cell.scroll_into_view_if_needed()
            shot = tmp_path / "quickstart-widget.png"
            page.screenshot(path=str(shot), full_page=False)
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")
            run_command(page, "docmanager:save")
            saved = root / "00-quickstart.ipynb"

            def saved_html() -> str:
                cells = json.loads(saved.read_text())["cells"]
                job = next(c for c in cells if "".join(c["source"]).startswith(JOB_MAGIC))
                outputs = job.get("outputs", [])
                return "".join("".join(o.get("data", {}).get("text/html", "")) for o in outputs)

            deadline = time.monotonic() + 30
            while 'data-status="Completed"' not in saved_html() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert 'data-status="Completed"' in saved_html(), "the saved notebook keeps the final summary"
            assert "training done" in saved_html()
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()

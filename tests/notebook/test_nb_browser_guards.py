"""What must stay true of a live RunDetails in a real browser (headless Debian Chromium against
JupyterLab 4 and Notebook 7 on loopback): the page answers clicks during a 20,000-line flood
about as fast as when idle, "open full log" downloads the whole file from the server, Cancel
cancels, and a notebook saved mid-run whose kernel then died reopens with the summary.
"""
from __future__ import annotations

import json
import os
import signal
import statistics
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import batchai_jupyter as bai
from tests.notebook.lab_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    jupyter_server,
    need_browser,
    open_notebook,
    pids_under,
    run_command,
    screenshot,
    write_notebook,
)

pytestmark = pytest.mark.timeout(400)
SETUP = ("import batchai_jupyter as bai, time\n"
         "ws = bai.Workspace.create('.batchai', exist_ok=True)")
LOAD = "%load_ext batchai_jupyter"
BATCHES, PER_BATCH = 40, 500  # 20,000 coloured lines over about ten seconds
FLOOD_JOB = textwrap.dedent(f"""\
    %%batchai_job --experiment flood
    import time
    print("ready", flush=True)
    time.sleep(8)
    for b in range({BATCHES}):
        print("".join(f"\\x1b[32mflood {{b * {PER_BATCH} + i:05d}}\\x1b[0m {{'x' * 50}}\\n"
                      for i in range({PER_BATCH})), end="", flush=True)
        time.sleep(0.25)
    print("flood done", flush=True)
    time.sleep(300)
""")
PANE_TAIL = """() => { const lines = document.querySelectorAll('.bai-pane-scroll .bai-pane-line');
    return [...lines].slice(-3).map(e => e.textContent).join('\\n'); }"""
#: the last twelve lines' tops in the pane, and whether the last text line is inside its viewport
STACKED = """() => { const box = document.querySelector('.bai-pane-scroll');
    const b = box.getBoundingClientRect();
    const lines = [...box.querySelectorAll('.bai-pane-line')].filter(e => e.textContent !== '\u200b');
    const last = lines[lines.length - 1], r = last.getBoundingClientRect();
    return {tops: lines.slice(-12).map(e => Math.round(e.getBoundingClientRect().top)),
            last: last.textContent, inside: r.top >= b.top - 1 && r.bottom <= b.bottom + 1}; }"""
COUNT_CLICKS = """() => { window.__clicks = 0;
    document.addEventListener('click', () => { window.__clicks += 1; }, true); }"""
#: a click during the flood may take this many times the idle click (the median of each)
SLOWDOWN_BOUND = 10


def _click_seconds(page: Any, x: float, y: float) -> float:
    """How long a real mouse click in the pane takes to reach a handler in the page."""
    n = page.evaluate("() => window.__clicks") + 1
    t0 = time.perf_counter()
    page.mouse.click(x, y)
    page.wait_for_function("(n) => window.__clicks >= n", arg=n, timeout=60_000)
    return time.perf_counter() - t0


def _saved_job_outputs(path: Path) -> list[dict[str, Any]]:
    cells = json.loads(path.read_text())["cells"]
    return next(c for c in cells if "".join(c["source"]).startswith("%%batchai_job"))["outputs"]


def test_flood_full_log_cancel_and_a_saved_mid_run_notebook(tmp_path: Path) -> None:
    need_browser()
    from playwright.sync_api import expect, sync_playwright
    root = tmp_path / "nb"
    root.mkdir()
    bai.Workspace.create(root / ".batchai")  # the server extension serves this workspace
    write_notebook(root / "flood.ipynb", [SETUP, LOAD, FLOOD_JOB])
    with jupyter_server(tmp_path, root, "lab") as (base, token), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900}, accept_downloads=True)
        page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" on reload
        url = f"{base}/lab/tree/flood.ipynb?token={token}"
        try:
            open_notebook(page, url)
            run_command(page, "notebook:run-all-cells")
            pane = page.locator(".bai-pane-scroll")
            expect(pane).to_contain_text("ready", timeout=120_000)
            page.evaluate(COUNT_CLICKS)
            box = pane.bounding_box()
            x, y = box["x"] + 40, box["y"] + box["height"] / 2
            idle = [_click_seconds(page, x, y) for _ in range(5)]
            page.wait_for_function(f"() => ({PANE_TAIL})().includes('flood ')", timeout=60_000)
            during: list[float] = []
            while len(during) < 15:
                took = _click_seconds(page, x, y)
                if "flood done" in page.evaluate(PANE_TAIL):
                    break
                during.append(took)
            print(f"click -> handler: idle median {statistics.median(idle) * 1000:.0f} ms, during the "
                  f"flood median {statistics.median(during) * 1000:.0f} ms, max {max(during) * 1000:.0f} ms "
                  f"({len(during)} clicks)")
            assert len(during) >= 3, "the flood ended before the page could be clicked"
            assert statistics.median(during) <= SLOWDOWN_BOUND * statistics.median(idle), (idle, during)
            expect(pane).to_contain_text("flood done", timeout=60_000)
            # the pane keeps the last lines; the banner counts the others and offers the full log
            banner = page.locator(".bai-pane-banner")
            expect(banner).to_contain_text("earlier lines")
            assert page.locator(".bai-pane-scroll .bai-pane-line").count() <= 5001
            screenshot(page, "lab-flood-banner.png")
            # the kept lines are drawn one under the other, the last of them in view
            rows = page.evaluate(STACKED)
            assert rows["last"] == "flood done" and rows["inside"], rows
            assert rows["tops"] == sorted(set(rows["tops"])) and len(rows["tops"]) == 12, rows
            with page.expect_download(timeout=60_000) as info:
                banner.get_by_role("button", name="open full log").click()
            lines = Path(info.value.path()).read_text().splitlines()
            assert lines[-1] == "flood done" and len(lines) == BATCHES * PER_BATCH + 2, lines[-3:]
            assert info.value.suggested_filename == "stdout.txt"
            expect(banner).to_contain_text("from the Jupyter server")
            # saved mid-run: the file holds the summary, not the widget view
            run_command(page, "docmanager:save")
            saved = root / "flood.ipynb"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not _saved_job_outputs(saved):
                time.sleep(0.2)
            outputs = _saved_job_outputs(saved)
            assert [set(o["data"]) for o in outputs] == [{"text/html", "text/plain"}], outputs
            html = "".join(outputs[0]["data"]["text/html"])  # the run as of the save
            assert 'data-status="Running"' in html and "flood done" in html, html[:2000]
            # Cancel cancels: the display ends as the summary of a canceled run
            page.get_by_role("button", name="Cancel run").click()
            expect(page.locator('.bai-run-summary .bai-status[data-status="Canceled"]')).to_be_visible(
                timeout=60_000)
            # the kernel dies; the notebook is opened again (the server starts a new kernel)
            kernels = pids_under(tmp_path / "runtime")
            assert kernels, "no kernel process found"
            for pid in kernels:
                os.kill(pid, signal.SIGKILL)
            page.reload()
            open_notebook(page, url)
            page.wait_for_timeout(1500)
            notebook = page.locator(".jp-Notebook")
            summary = notebook.locator(".bai-run-summary")
            expect(summary).to_have_count(1)
            expect(summary.locator('.bai-status[data-status="Running"]')).to_be_visible()
            expect(summary.locator(".bai-log")).to_contain_text("flood done")
            expect(notebook).not_to_contain_text("model not found")
            expect(notebook).not_to_contain_text("Error displaying widget")
            screenshot(page, "lab-reopened-after-the-kernel-died.png")
        except BaseException:
            screenshot(page, "lab-flood-failure-of-test.png")
            raise
        finally:
            browser.close()

"""What the Batch AI panel costs while nothing happens, measured in a real JupyterLab and
Chromium from the page's own traffic (Playwright's request and WebSocket events):

- shown, with finished runs listed, it stays under 2 KB/s (HTTP bodies and headers plus the
  events WebSocket's frames, everything under `/batchai/`), and is still live afterwards;
- hidden behind another sidebar tab, it sends no request at all, and a run that ends meanwhile
  makes it read nothing (only the status bar's one-row count), until it is shown again.

The events socket stays open while the panel is hidden (the status bar and the end-of-run
notifications listen to it); when nothing happens it carries nothing, and a frame it carries then
may be at most KEEPALIVE bytes (docs/lab.md, "Idle cost")."""
from __future__ import annotations

import os
import re
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest

from tests.lab.conftest import Exchange, LabSession
from tests.notebook.lab_server import screenshot

QUICK = os.environ.get("BATCHAI_TEST_QUICK") == "1" or os.environ.get("BENCH_QUICK") == "1"
IDLE_SECONDS = 10 if QUICK else 20
HIDDEN_SECONDS = 10
BUDGET = 2048  # bytes per second the shown, idle panel may cost
KEEPALIVE = 64  # the largest frame on the events socket that counts as a keep-alive

LAB_FILES = {"src/hello.py": "print('hello')\n"}

FINISHED = """
import batchai_jupyter as bai
ws = bai.Workspace.from_config()
runs = [ws.experiment("idle").submit(bai.JobSpec(source_directory="src", script="hello.py")) for _ in range(3)]
for run in runs:
    run.wait_for_completion(timeout=120)
print(*[run.id for run in runs])
"""

SUBMIT = """
import sys
import batchai_jupyter as bai
ws = bai.Workspace.from_config()
run = ws.experiment("idle-late").submit(bai.JobSpec(source_directory="src", script="hello.py"))
if sys.argv[1] == "wait":
    run.wait_for_completion(timeout=120)
print(run.id)
"""


def ours(exchange: Exchange) -> bool:
    return "/batchai/" in urlsplit(exchange.url).path


def quiet(lab: LabSession, seconds: float) -> list[Exchange]:
    """Leave the page alone for `seconds`: what it exchanged meanwhile."""
    start = time.time()
    lab.page.wait_for_timeout(seconds * 1000)  # not time.sleep: Playwright delivers events while it waits
    return lab.traffic.between(start, start + seconds)


def breakdown(exchanges: list[Exchange]) -> str:
    bytes_by: Counter[str] = Counter()
    for e in exchanges:
        bytes_by[f"{e.kind} {urlsplit(e.url).path}"] += e.size
    return ", ".join(f"{k}: {v} B" for k, v in bytes_by.most_common(8)) or "nothing"


def test_the_shown_panel_costs_under_2_kb_per_second_while_idle(lab_session: LabSession) -> None:
    lab = lab_session
    run_ids = lab.python(FINISHED, timeout=180)
    panel = lab.open_panel()
    for run_id in run_ids:
        panel.locator(f'.bai-run-row[data-run-id="{run_id}"]', has_text="Completed").wait_for(
            state="visible", timeout=15_000)
    lab.page.wait_for_timeout(2000)  # what showing the panel read has finished
    cpu = lab.server_cpu_seconds()
    seen = quiet(lab, IDLE_SECONDS)
    cpu = lab.server_cpu_seconds() - cpu
    mine = [e for e in seen if ours(e)]
    rate, total_rate = sum(e.size for e in mine) / IDLE_SECONDS, sum(e.size for e in seen) / IDLE_SECONDS
    print(f"idle {IDLE_SECONDS} s, panel shown with {len(run_ids)} finished runs: /batchai/ {rate:.0f} B/s "
          f"({len(mine)} exchanges: {breakdown(mine)}); the whole page {total_rate:.0f} B/s "
          f"({len(seen)} exchanges: {breakdown(seen)}); the server used {cpu:.2f} s of CPU meanwhile")
    screenshot(lab.page, "lab_idle_panel.png")
    assert rate < BUDGET, breakdown(mine)
    # still live after the quiet time: a run submitted elsewhere shows without a reload
    after = time.time()
    [late] = lab.python(SUBMIT, "nowait")
    panel.locator(f'.bai-run-row[data-run-id="{late}"]').wait_for(state="visible", timeout=10_000)
    lab.page.wait_for_timeout(500)
    read = [urlsplit(e.url).path for e in lab.traffic.between(after, time.time()) if ours(e) and e.kind == "http"]
    assert "/batchai/api/v1/runs" in read, read  # what the recording sees of a change


def test_the_hidden_panel_reads_nothing(lab_session: LabSession) -> None:
    lab = lab_session
    page = lab.page
    panel = lab.open_panel()
    page.locator('.jp-SideBar [data-id="filebrowser"]').click()
    page.locator(".jp-FileBrowser").wait_for(state="visible", timeout=10_000)
    assert not panel.is_visible()
    page.wait_for_timeout(1000)
    seen = quiet(lab, HIDDEN_SECONDS)
    mine = [e for e in seen if ours(e)]
    print(f"panel hidden {HIDDEN_SECONDS} s: /batchai/ {len(mine)} exchanges ({breakdown(mine)}); the whole page "
          f"{sum(e.size for e in seen) / HIDDEN_SECONDS:.0f} B/s ({breakdown(seen)})")
    assert [e for e in mine if e.kind == "http"] == [], breakdown(mine)
    assert all(e.size <= KEEPALIVE for e in mine), breakdown(mine)
    # a run ends while hidden: the events socket tells the status bar and the notifications,
    # which read the one-row count; the panel reads nothing
    start = time.time()
    [late] = lab.python(SUBMIT, "wait")
    toast = page.locator(".Toastify__toast", has_text=late)
    toast.wait_for(state="visible", timeout=20_000)
    page.wait_for_timeout(1000)
    during = [e for e in lab.traffic.between(start, time.time()) if ours(e) and e.kind == "http"]
    panel_reads = [e.url for e in during if not re.search(r"/runs\?fields=id&limit=1(&\d+)?$", e.url)]
    print(f"a run ended while hidden: /batchai/ requests {[urlsplit(e.url).path for e in during]}")
    assert during, "the status bar read no count when a run ended"
    assert panel_reads == [], panel_reads
    assert any(e.kind == "ws-received" and ours(e) for e in lab.traffic.between(start, time.time()))
    screenshot(page, "lab_idle_hidden.png")
    # shown again, it reads once and lists the run that ended meanwhile
    lab.open_panel().locator(f'.bai-run-row[data-run-id="{late}"]', has_text="Completed").wait_for(
        state="visible", timeout=10_000)


@pytest.fixture(autouse=True)
def _no_run_views_open(lab_session: LabSession) -> None:
    """No run view is open in this module (it would follow its run and cost what it must)."""
    assert lab_session.page.locator(".bai-runview").count() == 0

"""The widget is seen to render: JupyterLab on loopback, driven by headless Debian Chromium.

Runs the quickstart recipe in a real JupyterLab and checks, in the page, that the job cell's
RunDetails widget reaches Completed and shows the job's own log lines; the saved notebook
keeps the final static summary. A screenshot is left in the test's temp dir.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchai_jupyter.engine.control import forget, stop_engine

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
JOB_MAGIC = "%%batchai_job"  # the quickstart's job cell starts with it

pytestmark = pytest.mark.timeout(300)
KERNEL_READY = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session
        && panel.sessionContext.session.kernel;
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_under(path: Path) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines()
            if str(path) in line and int(line.split(None, 1)[0]) != os.getpid()]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """JupyterLab serving a copy of the quickstart recipe; stopped (with its kernels) after."""
    if not CHROMIUM.exists():
        pytest.skip(reason="Debian chromium is not installed (run ci/setup-notebook.sh)")
    pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    root = tmp_path / "lab"
    root.mkdir()
    for name in ("00-quickstart.ipynb", ".amlignore"):
        shutil.copy(REPO / "recipes" / name, root / name)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    notebook_settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    notebook_settings.mkdir(parents=True)
    (notebook_settings / "tracker.jupyterlab-settings").write_text(
        json.dumps({"autoStartDefaultKernel": True}))  # no "Select Kernel" dialog
    env = {k: v for k, v in os.environ.items() if k != "BATCHAI_WORKSPACE"}
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               BATCHAI_ENGINE_IDLE_SECONDS="30")
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyter.log", "wb")  # noqa: SIM115 — the server writes to it until the end
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", "--allow-root", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.open_browser=False"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not start:\n" + (tmp_path / "jupyter.log").read_text()[-3000:])
                time.sleep(0.2)
        yield f"{base}/lab/tree/00-quickstart.ipynb?token={token}", root
    finally:
        proc.send_signal(signal.SIGTERM)  # the server shuts its kernels down
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        ws = root / ".batchai"
        if ws.exists():
            stop_engine(ws)
            forget(ws)
        for pid in _pids_under(tmp_path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_command(page, command: str) -> None:
    """Start a JupyterLab command without waiting on its promise (run-all ends with the notebook)."""
    page.evaluate(f"() => {{ window.jupyterapp.commands.execute({command!r}); }}")


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
            widget = cell.locator(".bai-run-details")
            expect(widget).to_be_visible(timeout=90_000)
            expect(widget.locator('.bai-status[data-status="Completed"]')).to_be_visible(timeout=120_000)
            log = widget.locator(".bai-log")
            expect(log).to_contain_text("epoch 4 loss 0.2", timeout=30_000)
            expect(log).to_contain_text("training done")
            expect(widget.locator(".bai-properties")).to_contain_text("quickstart")
            expect(widget.locator(".bai-chart[data-metric='loss'] svg")).to_be_visible()
            expect(widget.get_by_role("button", name="Cancel run")).to_be_disabled()
            # the file picker talks to the kernel: the job's ./logs file replaces stdout
            widget.locator("select").first.select_option("logs/progress.log")
            expect(log).to_contain_text("finished epoch 4", timeout=30_000)
            widget.locator("select").first.select_option("stdout.txt")
            expect(log).to_contain_text("training done", timeout=30_000)
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

"""A real Jupyter server (JupyterLab 4 or Notebook 7) on loopback and headless Debian Chromium,
for the browser tests; the server is stopped by its PID with its kernels and engines."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from batchai_jupyter.engine.control import forget, stop_engine
from tests.conftest import screens_dir

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KERNEL_READY = """() => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    const kernel = panel && panel.sessionContext && panel.sessionContext.session
        && panel.sessionContext.session.kernel;
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""


def need_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(reason="Debian chromium is not installed (run ci/setup-notebook.sh)")
    pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_under(path: Path) -> list[int]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,args="],  # -ww: whole command lines, never cut
                         capture_output=True, text=True, check=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines()
            if str(path) in line and int(line.split(None, 1)[0]) != os.getpid()]


def write_notebook(path: Path, sources: list[str]) -> None:
    """A notebook of code cells (Python 3 kernel)."""
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
              "source": src} for src in sources]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1))


@contextmanager
def jupyter_server(tmp_path: Path, root: Path, app: str = "lab",
                   command: list[str] | None = None) -> Iterator[tuple[str, str]]:
    """(base url, token) of `jupyter lab` or `jupyter notebook` serving `root`; `command` starts
    the app another way (another environment's `python -m jupyterlab`)."""
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
    port, token = free_port(), secrets.token_hex(16)
    expose = "--LabApp.expose_app_in_browser=True" if app == "lab" else "--expose-app-in-browser"
    log = open(tmp_path / f"jupyter-{app}.log", "wb")  # noqa: SIM115 — written until the end
    proc = subprocess.Popen(
        [*(command or [sys.executable, "-m", "jupyter", app]), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", "--allow-root", f"--ServerApp.root_dir={root}", expose,
         "--ServerApp.open_browser=False"],
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
                    pytest.fail(f"jupyter {app} did not start:\n"
                                + (tmp_path / f"jupyter-{app}.log").read_text()[-3000:])
                time.sleep(0.2)
        yield base, token
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
        for pid in pids_under(tmp_path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def api(base: str, token: str, path: str, method: str = "GET") -> Any:
    req = urllib.request.Request(f"{base}{path}?token={token}", method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def shut_down_kernels(base: str, token: str) -> None:
    """Delete every session (its kernel goes with it): what closing the notebook and coming
    back later is."""
    for session in api(base, token, "/api/sessions"):
        api(base, token, f"/api/sessions/{session['id']}", method="DELETE")


def run_command(page: Any, command: str, args: dict[str, Any] | None = None) -> None:
    """Start a Jupyter command without waiting on its promise (run-all ends with the notebook)."""
    page.evaluate("([c, a]) => { window.jupyterapp.commands.execute(c, a); }", [command, args or {}])


def open_notebook(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=30_000)
    page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook is the current widget
    page.wait_for_function(KERNEL_READY, timeout=90_000)


def screenshot(page: Any, name: str) -> Path:
    folder = screens_dir()  # kept after the run; the session's summary says where
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=False)
    print(f"screenshot: {path}")
    return path

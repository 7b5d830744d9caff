"""Shared fixtures of the JupyterLab extension's browser tests: one real JupyterLab server per
module (free port, its own token) serving a project folder with a workspace (cluster `local`),
the extension as built from this tree ahead of any copy an earlier install left in the venv, and
one headless Debian Chromium page on it that records the traffic it causes.

A module sets what its project folder holds and the window's size:

    LAB_FILES = {"src/lines.py": "..."}      # written under the project folder
    LAB_VIEWPORT = {"width": 1280, "height": 720}

and wraps `lab_session` in a fixture of its own when it wants helpers of its own."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import batchai_jupyter as bai
from tests.notebook.lab_server import CHROMIUM, jupyter_server, need_browser, pids_under, screenshot

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LABEXT = "batchai-jupyter-labextension"
BUILT = Path(bai.__file__).parent / "labextension"
PANEL_TAB = '.jp-SideBar [data-id="batchai-jupyter:panel"]'
ACTIVE = ("Queued", "Preparing", "Running", "CancelRequested")


def need_build() -> None:
    """Skip (with the reason) unless the extension has been built into the package folder."""
    if not (BUILT / "package.json").exists():
        pytest.skip(reason="the JupyterLab extension is not built (npm was missing at install: "
                           "install nodejs and npm, then `make labextension`)")


def fresh_build_path(folder: Path) -> str:
    """A JUPYTER_PATH entry under `folder` whose labextensions/ links to this tree's build, and
    the JUPYTER_PATH value that puts it first (the venv's share/ may hold an older copy)."""
    built = folder / "labextensions"
    built.mkdir(parents=True, exist_ok=True)
    link = built / LABEXT
    if not link.exists():
        link.symlink_to(BUILT)
    return os.pathsep.join(filter(None, [str(folder), os.environ.get("JUPYTER_PATH")]))


@dataclass
class Exchange:
    """One HTTP request or WebSocket frame the page saw: when, which URL, bytes (headers approx)."""

    ts: float
    kind: str  # "http" | "ws-sent" | "ws-received"
    url: str
    size: int


@dataclass
class Traffic:
    """What the page sends and receives, from Playwright's request and WebSocket events.

    HTTP sizes are read when asked (`request.sizes()` needs the finished request), so recording
    costs the page nothing while it runs. Playwright delivers events only while the test is in
    one of its calls: wait with `page.wait_for_timeout`, not `time.sleep`, to have frames stamped
    when they came (HTTP requests carry the browser's own timing)."""

    finished: list[tuple[float, Any]] = field(default_factory=list)
    frames: list[Exchange] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("requestfinished", lambda req: self.finished.append((time.time(), req)))
        page.on("requestfailed", lambda req: self.finished.append((time.time(), req)))
        page.on("websocket", self._socket)

    def _socket(self, ws: Any) -> None:
        self.sockets.append(ws.url)
        ws.on("framesent", lambda payload: self._frame("ws-sent", ws.url, payload))
        ws.on("framereceived", lambda payload: self._frame("ws-received", ws.url, payload))

    def _frame(self, kind: str, url: str, payload: str | bytes) -> None:
        size = len(payload.encode() if isinstance(payload, str) else payload)
        self.frames.append(Exchange(time.time(), kind, url, size + 2))  # + the frame's own header

    def between(self, start: float, end: float) -> list[Exchange]:
        """Every exchange that finished in [start, end), oldest first."""
        out = [f for f in self.frames if start <= f.ts < end]
        for seen, req in self.finished:
            ts = _finished_at(req, seen)
            if start <= ts < end:
                out.append(Exchange(ts, "http", req.url, _http_size(req)))
        return sorted(out, key=lambda e: e.ts)


def _finished_at(req: Any, seen: float) -> float:
    """When the browser had the whole answer (its own timing), else when the event was seen."""
    timing = req.timing
    if timing.get("startTime", -1) > 0 and timing.get("responseEnd", -1) >= 0:
        return float(timing["startTime"] + timing["responseEnd"]) / 1000
    return seen


def _http_size(req: Any) -> int:
    """Request and response bytes, headers included; a failed request counts what it sent."""
    try:
        sizes = req.sizes()
    except Exception:  # noqa: BLE001 — a request that failed has no response sizes
        return len(req.url) + sum(len(k) + len(v) + 4 for k, v in req.headers.items())
    return sum(max(0, int(v)) for v in sizes.values())


@dataclass
class LabSession:
    """The module's JupyterLab: its page, project folder, workspace, URL and token."""

    page: Any
    root: Path
    workspace: bai.Workspace
    base: str
    token: str
    tmp: Path
    traffic: Traffic

    def python(self, code: str, *args: str, timeout: float = 90) -> list[str]:
        """Run `code` in a separate Python process in the project folder: its stdout's words."""
        env = {k: v for k, v in os.environ.items() if k != "BATCHAI_WORKSPACE"}
        env.update(BATCHAI_ENGINE_IDLE_SECONDS="30", BATCHAI_KILL_GRACE="2")
        out = subprocess.run([sys.executable, "-c", code, *args], cwd=self.root, env=env,
                             capture_output=True, text=True, timeout=timeout, check=False)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    def server_cpu_seconds(self) -> float:
        """CPU time (user + system) the JupyterLab server process has used so far."""
        for pid in pids_under(self.tmp):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if any(a.endswith("jupyter-lab") for a in argv[:2]) or argv[1:3] == ["-m", "jupyterlab"]:
                fields = stat.rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        raise LookupError(f"no JupyterLab server under {self.tmp}")

    def open_panel(self) -> Any:
        """Click the Batch AI icon unless the panel shows already; the panel's locator."""
        panel = self.page.locator(".bai-panel")
        if not panel.is_visible():
            self.page.locator(PANEL_TAB).click()
        panel.locator(".bai-section-title", has_text="Runs").wait_for(state="visible", timeout=15_000)
        return panel


@pytest.fixture(scope="module")
def lab_session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSession]:
    """JupyterLab on the module's project folder and a Chromium page showing it (the Batch AI
    icon visible); on teardown the runs still active are cancelled and everything is stopped."""
    need_browser()
    need_build()
    files: dict[str, str] = getattr(request.module, "LAB_FILES", {})
    viewport: dict[str, int] = getattr(request.module, "LAB_VIEWPORT", {"width": 1280, "height": 720})
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    root.mkdir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    workspace = bai.Workspace.create(root / ".batchai")  # the one the server finds from its root_dir
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", fresh_build_path(tmp / "jupyter"))
        yield from _serve(tmp, root, workspace, viewport)


def _serve(tmp: Path, root: Path, workspace: bai.Workspace, viewport: dict[str, int]) -> Iterator[LabSession]:
    from playwright.sync_api import sync_playwright

    with jupyter_server(tmp, root) as (base, token), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=viewport)
            traffic = Traffic()
            traffic.attach(page)
            page.goto(f"{base}/lab?token={token}")
            page.locator(PANEL_TAB).wait_for(state="visible", timeout=60_000)
            yield LabSession(page, root, workspace, base, token, tmp, traffic)
        finally:
            for run in workspace.history.run_rows(status=ACTIVE):
                workspace.history.add_intent("cancel", run["id"])
            browser.close()


@pytest.fixture(autouse=True)
def screenshot_on_finish(request: pytest.FixtureRequest) -> Iterator[None]:
    """A screenshot of the page as each browser test left it (`<module>--<test>.png`, `-FAILED`
    when it failed), so a failure can be seen, not only read."""
    yield
    session: LabSession | None = getattr(request.node, "funcargs", {}).get("lab_session")
    if session is None:  # not a browser test, or it was skipped before the page existed
        return
    report = getattr(request.node, "_lab_call_report", None)
    failed = report is not None and report.failed
    name = re.sub(r"[^\w.-]+", "_", f"{request.module.__name__.rsplit('.', 1)[-1]}--{request.node.name}")
    try:
        screenshot(session.page, f"{name}{'-FAILED' if failed else ''}.png")
    except Exception as err:  # noqa: BLE001 — a closed page must not hide the test's own outcome
        print(f"no screenshot at the end of {request.node.name}: {err}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    if call.when == "call":
        item._lab_call_report = outcome.get_result()  # type: ignore[attr-defined]

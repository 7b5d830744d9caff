"""The wheel a user installs: it holds the prebuilt JupyterLab extension and the server
extension's config, and a fresh environment with only that wheel added lists both enabled and,
started from there, JupyterLab shows the Batch AI panel in Chromium (no node, no build step on
the user's side)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.conftest import CHROMIUM_ARGS, PANEL_TAB
from tests.notebook.lab_server import CHROMIUM, jupyter_server, need_browser, pids_under, screenshot

ROOT = Path(__file__).resolve().parents[2]
LABEXT = "batchai-jupyter-labextension"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / "batchai_jupyter" / "labextension" / "package.json").exists() and not shutil.which("npm"):
        pytest.skip(reason="the lab extension is not built and npm is missing to build it")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [built] = out.glob("batchai_jupyter-*.whl")
    return built


def test_the_wheel_holds_the_prebuilt_extension_and_the_server_config(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    share = [n for n in names if f"/data/share/jupyter/labextensions/{LABEXT}/" in n]
    assert any(n.endswith(f"{LABEXT}/package.json") for n in share), share
    assert any("/static/remoteEntry." in n and n.endswith(".js") for n in share), share
    assert any(n.endswith("/schemas/" + LABEXT + "/plugin.json") for n in share), share
    assert any(n.endswith("etc/jupyter/jupyter_server_config.d/batchai_jupyter.json") for n in names)
    assert not any("node_modules" in n or n.endswith(".ts") for n in names)


@dataclass
class Fresh:
    """A new venv holding only the wheel; JupyterLab reached from the test environment."""

    venv: Path
    python: str
    env: dict[str, str]
    home: Path


@pytest.fixture(scope="module")
def fresh(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Fresh:
    """A venv with the wheel installed (no node, no build step), as a user's would be after
    `pip install batchai-jupyter jupyterlab`: JupyterLab's Python packages come from the test
    environment through a .pth file placed after the wheel's own, and JupyterLab's application
    files (`share/jupyter/lab`, what its wheel puts in the prefix) are linked in. Nothing else of
    the test environment is seen: neither its other lab extensions nor its configuration."""
    tmp = tmp_path_factory.mktemp("fresh")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--ignore-installed",
                    "--prefix", str(venv), str(wheel)], check=True, timeout=300)
    # --ignore-installed: pip would otherwise uninstall the test environment's own editable copy
    site = next((venv / "lib").glob("python3*/site-packages"))
    # JupyterLab itself from the test environment (already installed there), after the wheel's package
    (site / "zz_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    app_dir = Path(sys.prefix, "share", "jupyter", "lab")
    if (app_dir / "static").is_dir():
        (venv / "share" / "jupyter" / "lab").symlink_to(app_dir, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTHON"))}
    env["HOME"] = str(tmp / "home")  # no user-level extensions
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return Fresh(venv, str(venv / "bin" / "python"), env, tmp / "home")


def test_a_fresh_environment_with_the_wheel_lists_both_extensions_enabled(fresh: Fresh, tmp_path: Path) -> None:
    venv, python, env = fresh.venv, fresh.python, fresh.env
    located = subprocess.run([python, "-c", "import batchai_jupyter; print(batchai_jupyter.__file__)"],
                             capture_output=True, text=True, env=env, check=True, cwd=tmp_path).stdout
    assert located.startswith(str(venv)), located  # the wheel's copy, not the checkout
    assert Path(sys.prefix, "bin").exists() and _importable_here(), "the test environment lost batchai_jupyter"
    lab = subprocess.run([python, "-m", "jupyterlab.labextensions", "list"], capture_output=True, text=True,
                         env=env, timeout=120, cwd=tmp_path, check=False)
    listing = lab.stdout + lab.stderr
    line = next((ln for ln in listing.splitlines() if LABEXT in ln), "")
    assert "enabled" in line and "OK" in line, listing
    assert str(venv / "share" / "jupyter" / "labextensions") in listing, listing
    server = subprocess.run([python, "-m", "jupyter_server.extension.serverextension", "list"], capture_output=True,
                            text=True, env=env, timeout=120, cwd=tmp_path, check=False)
    listing = server.stdout + server.stderr
    block = listing.split(f"Config dir: {venv / 'etc' / 'jupyter'}", 1)[-1].split("Config dir:", 1)[0]
    assert "batchai_jupyter.server" in block and "enabled" in block and "OK" in block, listing


def test_jupyterlab_started_from_the_fresh_environment_shows_the_panel(
        fresh: Fresh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's check: `jupyter lab` from that venv, the Batch AI icon in the left bar, and a
    click on it opens the panel with the workspace's cluster (read through the server extension
    the wheel enabled)."""
    need_browser()
    if not (fresh.venv / "share" / "jupyter" / "lab" / "static").is_dir():
        pytest.skip(reason=f"JupyterLab's application files are missing from {sys.prefix}/share/jupyter/lab")
    from playwright.sync_api import sync_playwright

    import batchai_jupyter as bai

    root = tmp_path / "root"
    bai.Workspace.create(root / ".batchai")
    for name in list(os.environ):
        if name not in fresh.env:
            monkeypatch.delenv(name)  # the server sees only the fresh environment's variables
    for name, value in fresh.env.items():
        monkeypatch.setenv(name, value)
    requests: list[str] = []
    with jupyter_server(tmp_path, root, command=[fresh.python, "-m", "jupyterlab"]) as (base, token), \
            sync_playwright() as pw:
        assert _server_python(tmp_path) == fresh.python
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.on("requestfinished", lambda req: requests.append(req.url))
            page.goto(f"{base}/lab?token={token}")
            tab = page.locator(PANEL_TAB)
            tab.wait_for(state="visible", timeout=60_000)
            tab.click()
            panel = page.locator(".bai-panel")
            panel.locator(".bai-section-title", has_text="Runs").wait_for(state="visible", timeout=15_000)
            panel.locator(".bai-cluster-card", has_text="local").wait_for(state="visible", timeout=15_000)
            screenshot(page, "lab_wheel_panel.png")
        finally:
            browser.close()
    loaded = [u for u in requests if f"/lab/extensions/{LABEXT}/static/remoteEntry." in u]
    assert loaded, requests
    others = {u.split("/lab/extensions/", 1)[1].split("/static/", 1)[0] for u in requests if "/lab/extensions/" in u}
    assert others == {LABEXT}, others  # the venv's extensions only: none of the test environment's


def _server_python(tmp_path: Path) -> str:
    """The interpreter of the running `jupyterlab` server started under tmp_path."""
    for pid in pids_under(tmp_path):
        argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        if argv[1:3] == ["-m", "jupyterlab"]:
            return argv[0]
    return ""


def _importable_here() -> bool:
    return subprocess.run([sys.executable, "-c", "import batchai_jupyter"], cwd="/", check=False).returncode == 0

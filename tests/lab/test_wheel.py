"""The wheel a user installs: it holds the prebuilt JupyterLab extension and the server
extension's config, and a fresh environment with only that wheel added lists both enabled
(no node, no build step on the user's side)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

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


def test_a_fresh_environment_with_the_wheel_lists_both_extensions_enabled(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--ignore-installed",
                    "--prefix", str(venv), str(wheel)], check=True, timeout=300)
    # --ignore-installed: pip would otherwise uninstall the test environment's own editable copy
    site = next((venv / "lib").glob("python3*/site-packages"))
    # JupyterLab itself from the test environment (already installed there), after the wheel's package
    (site / "zz_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env["HOME"] = str(tmp_path / "home")  # no user-level extensions
    python = str(venv / "bin" / "python")
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


def _importable_here() -> bool:
    return subprocess.run([sys.executable, "-c", "import batchai_jupyter"], cwd="/", check=False).returncode == 0

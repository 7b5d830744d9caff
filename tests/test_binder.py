"""binder/ builds an environment in which every recipe runs top to bottom.

The environment is built as repo2docker would, without a container engine: a fresh virtualenv
(no packages of this one), binder/requirements.txt, then binder/postBuild from the repository's
root; binder/apt.txt's packages must be on the machine. The recipes then run there under nbval
on a copy of recipes/, against a workspace of their own (BATCHAI_WORKSPACE).

1.5 minutes on an idle 2-core machine with pip's cache warm (it is reused: PIP_CACHE_DIR or
~/.cache/pip), up to 5 on a busy one; the first run also downloads torch's CPU wheel. So it is
marked `binder`, which pytest leaves out unless asked (`-m binder`, pyproject.toml's addopts):
`make test-binder` runs it, and CI (.ci/run) runs it after `make test`.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from batchai_jupyter.compute.local.accounts import account_name, isolated_root
from batchai_jupyter.engine.control import stop_engine

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder"
pytestmark = [pytest.mark.binder, pytest.mark.timeout(1800)]


def _lines(path: Path) -> list[str]:
    """The file's entries without comments and blank lines (as repo2docker reads them)."""
    return [line.partition("#")[0].strip() for line in path.read_text().splitlines()
            if line.partition("#")[0].strip()]


def _reachable(url: str) -> bool:
    host = urlparse(url).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
        with socket.create_connection((host, 443), timeout=5):
            return True
    except OSError:
        return False


def _requirements(tmp: Path) -> Path:
    """binder/requirements.txt, less an extra index this machine cannot reach (its packages then
    come from pip's configured sources, e.g. a local wheel folder)."""
    kept = []
    for line in _lines(BINDER / "requirements.txt"):
        if line.startswith("--extra-index-url") and not _reachable(line.split()[-1]):
            print(f"not reachable from here, left out: {line}")
            continue
        kept.append(line)
    out = tmp / "requirements.txt"
    out.write_text("\n".join(kept) + "\n")
    return out


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> str:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)
    assert proc.returncode == 0, f"{' '.join(argv)} failed ({proc.returncode}):\n" \
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _accounts() -> set[str]:
    import pwd
    return {entry.pw_name for entry in pwd.getpwall()}


def _remove_outside(workspace: Path, before: set[str]) -> None:
    """What the recipes' local clusters left outside the workspace: as root they run jobs as
    batchai-<cluster> (run_as="auto", the binder image's default) with node folders under
    /var/lib/batchai/<workspace id>/. The folders go; an account only if this test made it."""
    clusters = sorted(p.name for p in (workspace / "clusters").glob("*") if p.is_dir())
    shutil.rmtree(isolated_root(workspace, "local").parent, ignore_errors=True)
    made = _accounts() - before
    for cluster in clusters:
        name = account_name({"run_as": "auto"}, cluster)
        if name in made:
            subprocess.run(["userdel", name], capture_output=True, check=False)


def test_binder_environment_runs_every_recipe(tmp_path: Path) -> None:
    missing = [p for p in _lines(BINDER / "apt.txt")
               if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                                 text=True, check=False).stdout != "install ok installed"]
    if missing:
        pytest.skip(reason=f"binder/apt.txt packages not installed here: {', '.join(missing)} "
                           f"(ci/setup-ssh.sh installs them)")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "BATCHAI_"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               HOME=str(home), PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR",
                                                            str(Path.home() / ".cache" / "pip")))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _run([*pip, "-r", str(_requirements(tmp_path))], env, REPO, 1200)
    _run(["bash", str(BINDER / "postBuild")], env, REPO, 600)
    settings = home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
    assert (settings / "notification.jupyterlab-settings").exists()
    # the image has what the recipes import; the test runner (nbval) is added for the check only
    imports = "import batchai_jupyter, torch, mpi4py, numpy, ipywidgets, azure.storage.blob"
    _run([str(venv / "bin" / "python"), "-c", imports], env, REPO, 120)
    _run([*pip, "nbval>=0.11", "pytest-timeout>=2.3"], env, REPO, 600)
    recipes = tmp_path / "recipes"
    shutil.copytree(REPO / "recipes", recipes, ignore=shutil.ignore_patterns(".batchai", ".ipynb_checkpoints"))
    env.update(BATCHAI_WORKSPACE=str(tmp_path / "ws" / ".batchai"), BATCHAI_ENGINE_IDLE_SECONDS="30")
    # binder/start is the image's entry point: the recipes run under it
    accounts = _accounts()
    try:
        out = _run(["bash", str(BINDER / "start"), str(venv / "bin" / "python"), "-m", "pytest", "-v",
                    "-p", "no:cacheprovider", "--nbval-lax", "--timeout=600", "--rootdir", str(recipes),
                    *sorted(str(p) for p in recipes.glob("*.ipynb"))], env, recipes, 1200)
    finally:
        stop_engine(Path(env["BATCHAI_WORKSPACE"]))
        _remove_outside(Path(env["BATCHAI_WORKSPACE"]), accounts)
    notebooks = sorted(p.name for p in (REPO / "recipes").glob("*.ipynb"))
    assert len(notebooks) >= 6
    for name in notebooks:  # each recipe's cells ran there, and none failed
        stem = Path(name).stem
        assert any(stem in line and "Cell 0 PASSED" in line for line in out.splitlines()), (name, out[-3000:])
    assert " FAILED" not in out and " ERROR" not in out, out[-3000:]

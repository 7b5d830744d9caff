"""Small helpers shared by test modules (fixtures live in conftest.py)."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def wait_until(predicate: Callable[[], bool], timeout: float = 60, interval: float = 0.05) -> bool:
    """Poll until predicate() is true; False after timeout (the caller asserts)."""
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


def process_gone(pid: int) -> bool:
    """The process has exited (no /proc entry, or a zombie waiting for its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


@contextmanager
def reachable_python_venv() -> Iterator[str]:
    """A Python every account can run, with batchai_jupyter on its path (a venv of the system's
    python3.11 in /tmp): the test venv's own interpreter may live under /root (pyenv), which jobs
    running as their cluster's unprivileged account (local run_as) cannot enter."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    import pytest

    import batchai_jupyter as bai
    if not Path("/usr/bin/python3.11").exists():
        pytest.skip(reason="no /usr/bin/python3.11 to build a venv the job accounts can run")
    base = Path(tempfile.mkdtemp(prefix="bai-iso-python-", dir="/tmp"))  # not the session's 0700 tmp
    try:
        base.chmod(0o755)
        subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(base / "venv")], check=True)
        site = next((base / "venv" / "lib").glob("python3*/site-packages"))
        import sysconfig
        # this package's source, then the test venv's packages (the datastore SDKs the agent uses)
        (site / "batchai_jupyter_source.pth").write_text(
            f"{Path(bai.__file__).resolve().parents[1]}\n{sysconfig.get_paths()['purelib']}\n")
        rclone = shutil.which("rclone", path=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
        if rclone:  # the agent finds its tools beside its Python, as an installed venv has them
            (base / "venv" / "bin" / "rclone").symlink_to(rclone)
        yield str(base / "venv" / "bin" / "python")
    finally:
        shutil.rmtree(base, ignore_errors=True)

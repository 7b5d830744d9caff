"""Real podman for the container tests: the test image (built once, cached by ci/setup-containers.sh)
and, after every test, a check that none of this session's containers is left. Another test run
on the machine may have containers of its own at the same time: a job's container carries its
run folder as a label (batchai.run_dir), and only those under this session's temp folder count."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from batchai_jupyter.node.container_argv import LABEL
from tests.conftest import REPO, session_temp

SETUP = REPO / "ci" / "setup-containers.sh"


def podman_missing() -> str | None:
    """Why podman cannot run containers here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (ci/setup-containers.sh installs it)"
    if shutil.which("runc") is None:
        return "runc is not installed (crun cannot start containers on this host)"
    return None


def containers() -> list[str]:
    """Names of this session's job containers, running or not."""
    out = subprocess.run(["podman", "ps", "-a", "--filter", f"label={LABEL}", "--format",
                          '{{.Names}}\t{{index .Labels "batchai.run_dir"}}'],
                         capture_output=True, text=True, check=False, timeout=60)
    roots = {str(session_temp()), os.path.realpath(session_temp())}
    names = []
    for line in out.stdout.splitlines():
        name, _, run_dir = line.partition("\t")
        if name.strip() and any(run_dir == root or run_dir.startswith(root + os.sep) for root in roots):
            names.append(name.strip())
    return names


@pytest.fixture(scope="session")
def image() -> str:
    """The test image (Debian bookworm, python3 3.11, OpenMPI, mpi4py, module bai_image_marker)."""
    why = podman_missing()
    if why:
        pytest.skip(reason=why)
    done = subprocess.run(["sh", str(SETUP)], capture_output=True, text=True, check=False, timeout=900)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        pytest.skip(reason=f"the test image could not be built: {done.stderr.strip()[-500:]}")
    return lines[-1].strip()


@pytest.fixture(autouse=True)
def no_container_left() -> Iterator[None]:
    """Every test ends with none of the session's containers left (a container removed by its
    watchdog may take a moment: its agent is polled once a second)."""
    yield
    if shutil.which("podman") is None:
        return
    end = time.time() + 15
    left = containers()
    while left and time.time() < end:
        time.sleep(0.2)
        left = containers()
    if left:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *left], capture_output=True, check=False)
    assert left == [], f"containers left behind: {left}"

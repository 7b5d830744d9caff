"""The set-up scripts (ci/setup-*.sh) as a person on a fresh machine runs them: without root each
exits 0, changes nothing and says what it skipped; as root, once set up, a second run changes
nothing; setup-ssh.sh checks the virtualenv it is given (VENV), not the repository's .venv.

The unprivileged runs are as `nobody` (setpriv), with a copy of ci/ in a folder every account can
read, so they never depend on where the repository lives; the root runs only where the machine
is already set up (they never install anything: `make setup` does that)."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

CI = REPO / "ci"
SCRIPTS = sorted(p.name for p in CI.glob("setup-*.sh"))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                reason="needs root and setpriv to run the scripts as another account")


def _nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip(reason="no account 'nobody' to run the scripts unprivileged")


class Place:
    """A folder every account can read: a copy of ci/, a virtualenv, nobody's own temp folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ci = root / "repo" / "ci"
        self.venv = root / "venv"
        self.tmp = root / "nobody-tmp"


@pytest.fixture(scope="module")
def place() -> Iterator[Place]:
    user = _nobody()
    if not Path("/usr/bin/python3.11").exists():
        pytest.skip(reason="no /usr/bin/python3.11 to make a virtualenv every account can run")
    # not the session's temp folder: it is 0700, and nobody must read this one
    root = Path(tempfile.mkdtemp(prefix="bai-setup-", dir="/tmp"))
    try:
        root.chmod(0o755)
        here = Place(root)
        shutil.copytree(CI, here.ci)
        subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(here.venv)], check=True)
        # the test venv's packages (torch, numpy, mpi4py where `make setup` put them) seen from it
        site = next((here.venv / "lib").glob("python3*/site-packages"))
        (site / "test_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        here.tmp.mkdir()
        os.chown(here.tmp, user.pw_uid, user.pw_gid)
        yield here
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _as_nobody(place: Place, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    user = _nobody()
    argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
            "env", "-i", f"PATH={PATH}", f"HOME={user.pw_dir}", f"TMPDIR={place.tmp}", "LANG=C.UTF-8",
            *(f"{k}={v}" for k, v in env.items()), "bash", str(place.ci / script)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=place.root)


def _owned_by(uid: int, folders: list[Path]) -> list[str]:
    found = []
    for folder in folders:
        try:
            found += [str(p) for p in folder.iterdir() if p.lstat().st_uid == uid]
        except OSError:
            continue
    return sorted(found)


def _tree(root: Path, skip: Path) -> list[tuple[str, int, float]]:
    return sorted((str(p), p.lstat().st_size, p.lstat().st_mtime) for p in root.rglob("*")
                  if skip not in p.parents and p != skip)


@pytest.mark.parametrize("script", SCRIPTS)
def test_without_root_a_script_exits_0_changes_nothing_and_says_what_it_skipped(place: Place,
                                                                                   script: str) -> None:
    uid = _nobody().pw_uid
    shared = [Path("/tmp"), Path("/var/tmp"), Path("/dev/shm")]
    before, left = _tree(place.root, place.tmp), _owned_by(uid, shared)
    done = _as_nobody(place, script, VENV=str(place.venv))
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert _tree(place.root, place.tmp) == before, said       # the copy of ci/, the virtualenv
    assert sorted(set(_owned_by(uid, shared)) - set(left)) == [], said  # nothing new in shared temp folders
    # what each one cannot do as nobody, it says
    if script == "setup-containers.sh":
        assert done.stdout == "" and "the container test image is not set up" in done.stderr, said
    if script == "setup-datastores.sh":  # the copy's .cache is root's (or there is no npm)
        assert "Azurite not installed" in said, said
    if script == "setup-ssh.sh":
        venv_python = f"{place.venv}/bin/python"
        assert (f"present for {venv_python}" in said
                or ("not installed:" in said and "not writable by nobody" in said)), said


def test_setup_ssh_checks_the_virtualenv_it_is_given(place: Place) -> None:
    """The Makefile passes VENV=; a typo there is said, not a silent check of another venv."""
    missing = place.root / "no-such-venv"
    done = _as_nobody(place, "setup-ssh.sh", VENV=str(missing))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"no virtualenv python at {missing}/bin/python" in done.stderr
    seen = _as_nobody(place, "setup-ssh.sh", VENV=str(place.venv))
    assert f"{place.venv}/bin/python" in seen.stdout + seen.stderr
    assert str(REPO / ".venv") not in seen.stdout + seen.stderr


def _has(*commands: str) -> bool:
    return all(shutil.which(c) or Path("/usr/sbin", c).exists() for c in commands)


def _venv_has(*modules: str) -> bool:
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _image_ready() -> bool:
    if not _has("podman", "runc", "mmdebstrap", "fuse-overlayfs", "newuidmap", "flock"):
        return False
    name = subprocess.run(["sh", str(CI / "setup-containers.sh"), "--name"], capture_output=True, text=True,
                          check=False).stdout.strip()
    return subprocess.run(["podman", "image", "exists", name], capture_output=True, check=False).returncode == 0


def _azurite_ready() -> bool:
    return (REPO / ".cache/azurite/node_modules/.bin/azurite-blob").exists() and _has("npm")


READY = {  # what each script installs is there already, so running it costs nothing
    "setup-containers.sh": _image_ready,
    "setup-datastores.sh": _azurite_ready,
    "setup-node.sh": lambda: _has("npm"),
    "setup-notebook.sh": lambda: Path("/usr/bin/chromium").exists(),
    "setup-slurm.sh": lambda: _has("slurmctld", "slurmd", "sbatch", "munged") and Path("/etc/munge/munge.key").exists(),
    "setup-ssh.sh": lambda: _has("sshd", "mpirun", "ip") and _venv_has("torch", "numpy", "mpi4py"),
}


def _state() -> dict[str, object]:
    """What a set-up script may change: Debian's package database, the images, the venv, caches."""
    def stat(path: str) -> tuple[int, float] | None:
        try:
            st = os.stat(path)
            return st.st_size, st.st_mtime
        except OSError:
            return None
    images = subprocess.run(["podman", "images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"],
                            capture_output=True, text=True, check=False).stdout if _has("podman") else ""
    purelib = Path(sysconfig.get_paths()["purelib"])
    return {
        "dpkg": stat("/var/lib/dpkg/status"), "images": sorted(images.splitlines()),
        "venv": sorted(p.name for p in purelib.iterdir()),
        "munge": stat("/etc/munge/munge.key"),
        "azurite": stat(str(REPO / ".cache/azurite/node_modules/azurite/package.json")),
        "image cache": sorted(os.listdir("/var/cache/batchai-test-image"))
        if os.path.isdir("/var/cache/batchai-test-image") else [],
    }


@pytest.mark.parametrize("script", SCRIPTS)
def test_as_root_a_second_run_changes_nothing(script: str) -> None:
    ready = READY.get(script)
    assert ready is not None, f"{script}: say in READY when it is set up"
    if not ready():
        pytest.skip(reason=f"{script} would install things here first (make setup does that)")
    env = {**os.environ, "VENV": sys.prefix}
    run = ["bash", str(CI / script)]
    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    before = _state()
    second = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _state() == before
    assert second.stdout == first.stdout   # e.g. setup-containers.sh: the same image's name

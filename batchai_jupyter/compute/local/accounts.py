"""The account a local cluster's jobs run as, and where its node folders live.

`run_as` (a local cluster option): "auto" (the default) runs jobs as `batchai-<cluster>`, an
unprivileged system account made on first use, when the engine runs as root, else as the engine's
own user; "engine" always runs them as the engine's user; any other value names an existing
account. BATCHAI_LOCAL_RUN_AS sets the default for clusters that do not set it.

A job running as another account must reach its run folder, which a workspace under /root or a
0700 folder would not let it: such a cluster's node folders live outside the workspace, under
/var/lib/batchai/<workspace id>/<cluster>/, each level only traversable (0711) by others.
"""
from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ...errors import ClusterError, SpecError
from ...node.manifest import JobUser

RUN_AS_CHOICES = ("auto", "engine")
ISOLATED_ROOT = Path(os.environ.get("BATCHAI_LOCAL_NODE_BASE", "/var/lib/batchai"))
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def check_run_as(value: Any) -> None:
    """SpecError unless run_as is auto, engine or an account name."""
    if value is None or value in RUN_AS_CHOICES:
        return
    if not isinstance(value, str) or not _ACCOUNT.match(value):
        raise SpecError("run_as", f"{value!r} is not an account name", [*RUN_AS_CHOICES, "an account name"])


def account_name(config: dict[str, Any], cluster: str) -> str | None:
    """The account the cluster's jobs run as; None: the engine's own."""
    value = config.get("run_as") or os.environ.get("BATCHAI_LOCAL_RUN_AS") or "auto"
    if value == "engine":
        return None
    if value == "auto":
        if os.geteuid() != 0:
            return None
        base = re.sub(r"[^a-z0-9_-]", "-", f"batchai-{cluster.lower()}")
        if len(base) > 32:  # Linux names: 32 characters at most; keep them apart by a hash
            base = base[:23] + "-" + hashlib.sha1(cluster.encode()).hexdigest()[:8]
        return base
    return str(value)


def ensure_account(name: str, create: bool) -> JobUser:
    """The account's ids, made as an unprivileged system account when asked and missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if not create:
            raise ClusterError(f"account {name!r} (run_as) does not exist on this machine") from None
        useradd = shutil.which("useradd")
        if useradd is None:
            raise ClusterError(f"cannot make account {name!r} to run jobs as: no useradd here; set "
                               "run_as='engine' to run them as the engine's user") from None
        done = subprocess.run([useradd, "--system", "--user-group", "--no-create-home",
                               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                              capture_output=True, text=True, check=False)
        if done.returncode not in (0, 9):  # 9: made meanwhile by another engine
            raise ClusterError(f"cannot make account {name!r} to run jobs as: {done.stderr.strip()}") from None
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise ClusterError(f"run_as account {name!r} is root: pick an unprivileged one or 'engine'")
    return JobUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def check_runs_python(user: JobUser, python: str) -> None:
    """ClusterError unless the account can start the node's Python (one under /root cannot)."""
    try:
        done = subprocess.run([python, "-c", "import batchai_jupyter"], user=user["uid"], group=user["gid"],
                              extra_groups=[], cwd="/", capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        done = subprocess.CompletedProcess([python], 126, "", str(exc))
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["exit code " + str(done.returncode)])[-1]
        raise ClusterError(f"account {user['name']!r} (run_as) cannot run {python} with batchai_jupyter: "
                           f"{why}; install them where the account can read them (not under /root), set "
                           "the cluster's python=, or run_as='engine'")


def isolated_root(workspace_path: Path, cluster: str) -> Path:
    """Node folders of a cluster whose jobs run as another account: outside the workspace."""
    key = hashlib.sha1(str(Path(workspace_path).resolve()).encode()).hexdigest()[:16]
    return ISOLATED_ROOT / key / cluster


def make_traversable(path: Path, stop: Path) -> None:
    """Create path; it and each parent up to (not including) `stop`'s parent: 0711, owned as is."""
    path.mkdir(parents=True, exist_ok=True)
    current = path
    while True:
        os.chmod(current, 0o711)
        if current == stop or current.parent == current:
            return
        current = current.parent

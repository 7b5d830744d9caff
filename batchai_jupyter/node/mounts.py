"""Azure volumes on a node: a real FUSE mount through rclone, or a staged copy where FUSE is missing.

    fuse    rclone mount (azureblob / azurefiles backend) with --vfs-cache-mode writes; the SAS sits
            in a 0600 rclone config in the run folder, never in argv or a log, and the config is
            deleted once the mount is up. Before unmount every pending upload is waited for (rclone's
            remote control on a private unix socket), so what the job wrote is in storage before
            the run is final; then fusermount3 -u and rclone is stopped by its PID.
    staged  the volume's files are downloaded before the job; after it, files that are new or
            changed are uploaded (read-only volumes are only downloaded). Nothing is deleted.

Standard library only, plus the datastore kinds the node's credentials module builds.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..datastores.mount_mode import FUSE, STAGED, fuse_available
from ..errors import DatastoreError

if TYPE_CHECKING:
    from ..datastores.base import Datastore
    from .manifest import DataEntry

MOUNT_SECONDS = 30.0     # an rclone mount that is not up by then failed
FLUSH_SECONDS = 3600.0   # the longest wait for pending uploads before unmount
STOP_SECONDS = 10.0      # rclone's exit after unmount, then TERM, then KILL
_BACKENDS = {"azure_blob": "azureblob", "azure_file": "azurefiles"}


def _scrub(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text


@dataclass
class Volume:
    """One mounted or staged volume of a run on this node."""

    what: str                 # "mount 'data'", "cluster volume 'afs'", ...
    target: str
    mode: str
    read_only: bool
    ds: Datastore
    sub: str = ""
    pid: int | None = None
    workdir: str | None = None   # the 0700 folder of the rc socket (fuse)
    config: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    state: dict[str, tuple[int, int]] = field(default_factory=dict)  # staged: rel -> (size, mtime)


class Volumes:
    """Every Azure volume of one run on one node; `release()` is safe to call more than once."""

    def __init__(self, run_dir: str, env: Mapping[str, str], log: Callable[[str], None]):
        self.run_dir = run_dir
        self.path = env.get("PATH")
        self.env = dict(env)
        self.log = log
        self.volumes: list[Volume] = []

    # -- before the job ---------------------------------------------------------------------------
    def attach(self, ds: Datastore, entry: DataEntry, target: str, what: str, read_only: bool) -> str:
        """Mount (or stage) datastore `ds` at target; returns the folder the job uses."""
        sub = str(entry.get("path") or "").strip("/")
        mode = str(entry.get("mount_via") or FUSE)
        if mode == FUSE:
            missing = fuse_available(self.path)
            if missing is not None:
                self.log(f"{what}: FUSE was chosen at submit but {missing} on this node: staged instead")
                mode = STAGED
        vol = Volume(what=what, target=target, mode=mode, read_only=read_only, ds=ds, sub=sub)
        if os.path.ismount(target):  # left by a run that died: its rclone is gone, the mount is stale
            subprocess.run(["fusermount3", "-u", "-z", target], capture_output=True, timeout=30, check=False)
            if os.path.ismount(target):
                raise DatastoreError(f"{what}: {target} is still mounted by an earlier run and cannot be "
                                     "unmounted (fusermount3 -u failed)")
        if mode == STAGED and os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)  # a cluster volume's copy an earlier run left: start from storage
        os.makedirs(target, exist_ok=True)
        if mode == FUSE:
            self._mount(vol, entry)
        else:
            self._stage_in(vol)
        self.volumes.append(vol)
        return target

    def _mount(self, vol: Volume, entry: DataEntry) -> None:
        kind = str(entry["kind"])
        if kind not in _BACKENDS:
            raise DatastoreError(f"{vol.what}: datastore {vol.ds.name!r} of kind {kind!r} cannot be mounted")
        config, credential = entry["config"], entry.get("credential") or {}
        sas = str(credential.get("sas_token") or "").lstrip("?")
        root = config["container"] if kind == "azure_blob" else config["share"]
        secrets = [sas]
        rdir = os.path.join(self.run_dir, "rclone")
        os.makedirs(rdir, mode=0o700, exist_ok=True)
        name = f"v{len(self.volumes)}"
        vol.config = os.path.join(rdir, f"{name}.conf")
        lines = [f"[{name}]", f"type = {_BACKENDS[kind]}"]
        if sas:
            lines.append(f"sas_url = {config['endpoint']}/{root}?{sas}")
        elif credential.get("account_key"):
            secrets.append(str(credential["account_key"]))
            lines += [f"account = {config['account_name']}", f"key = {credential['account_key']}",
                      f"endpoint = {config['endpoint']}"]
            if kind == "azure_file":
                lines.append(f"share_name = {root}")
        else:
            raise DatastoreError(f"{vol.what}: datastore {vol.ds.name!r} gave this node no credential")
        fd = os.open(vol.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        # a blob remote starts at the account (its containers), a files remote at the share
        remote_path = "/".join(p for p in ((root if kind == "azure_blob" else ""), vol.sub) if p)
        vol.workdir = tempfile.mkdtemp(prefix="bai-rc-")  # a unix socket path must stay short
        argv = [str(shutil.which("rclone", path=self.path)), "--config", vol.config, "mount",
                f"{name}:{remote_path}", vol.target, "--vfs-cache-mode", "writes",
                "--vfs-write-back", "0s", "--dir-cache-time", "2s",
                "--cache-dir", os.path.join(rdir, f"{name}-cache"),
                "--rc", "--rc-addr", f"unix://{vol.workdir}/rc.sock", "--rc-no-auth",
                "--log-file", os.path.join(rdir, f"{name}.log"), "--log-level", "NOTICE"]
        if vol.read_only:
            argv.append("--read-only")
        if self.env.get("BATCHAI_JOB_UID"):  # the job runs as its own account (job_user.py)
            argv += ["--allow-other", "--uid", self.env["BATCHAI_JOB_UID"],
                     "--gid", self.env.get("BATCHAI_JOB_GID", self.env["BATCHAI_JOB_UID"])]
        vol.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
        vol.pid = vol.proc.pid
        end = time.time() + MOUNT_SECONDS
        while not os.path.ismount(vol.target):
            if vol.proc.poll() is not None or time.time() > end:
                tail = _tail(os.path.join(rdir, f"{name}.log"))
                self._stop(vol, wait=0.0)
                raise DatastoreError(f"{vol.what}: rclone could not mount datastore {vol.ds.name!r}: "
                                     f"{_scrub(tail, secrets) or 'no reason given'}")
            time.sleep(0.05)
        os.unlink(vol.config)  # rclone holds the credential in memory from here on
        vol.config = None
        self.log(f"{vol.what}: datastore {vol.ds.name!r} mounted with FUSE (rclone, pid {vol.pid}) "
                 f"at {vol.target}{' read-only' if vol.read_only else ''}")

    def _stage_in(self, vol: Volume) -> None:
        start = time.time()
        if not vol.sub:  # the whole container/share (an empty one is fine)
            vol.ds.download(vol.target, overwrite=True, show_progress=False)
        elif vol.ds.list(vol.sub):
            vol.ds.fetch_tree(vol.sub, vol.target)
        vol.state = _walk(vol.target)
        self.log(f"{vol.what}: datastore {vol.ds.name!r} staged at {vol.target}: {len(vol.state)} files "
                 f"downloaded ({time.time() - start:.2f}s); "
                 + ("read-only, nothing is uploaded" if vol.read_only else "changes are uploaded after the job"))

    # -- after the job ----------------------------------------------------------------------------
    def release(self) -> list[str]:
        """Flush and unmount every volume (staged ones: upload what changed); returns errors."""
        errors: list[str] = []
        while self.volumes:
            vol = self.volumes.pop()
            try:
                if vol.mode == FUSE:
                    self._unmount(vol)
                else:
                    if not vol.read_only:
                        self._stage_out(vol)
                    shutil.rmtree(vol.target, ignore_errors=True)  # no stale copy for the next run
            except Exception as exc:  # noqa: BLE001 -- one volume does not keep the others mounted
                errors.append(f"{vol.what}: {exc}")
        return errors

    def _unmount(self, vol: Volume) -> None:
        error = None
        if vol.workdir and vol.proc is not None and vol.proc.poll() is None:
            error = self._flush(vol)
        result = subprocess.run(["fusermount3", "-u", vol.target], capture_output=True, text=True,
                                timeout=60, check=False)
        if result.returncode != 0 and os.path.ismount(vol.target):  # still busy: detach it lazily
            subprocess.run(["fusermount3", "-u", "-z", vol.target], capture_output=True, timeout=60,
                           check=False)
        self._stop(vol)
        self.log(f"{vol.what}: unmounted (rclone pid {vol.pid} stopped)")
        if error:
            raise DatastoreError(error)

    def _flush(self, vol: Volume) -> str | None:
        """Wait until rclone uploaded every file the job closed; an error text if some failed."""
        end = time.time() + FLUSH_SECONDS
        while time.time() < end:
            try:
                stats = _rc(os.path.join(str(vol.workdir), "rc.sock"), "vfs/stats")
            except OSError:
                return None  # rclone is gone: nothing left to wait for
            cache = stats.get("diskCache") or {}
            if cache.get("erroredFiles"):
                return f"rclone could not upload {cache['erroredFiles']} file(s) to {vol.ds.name!r}"
            if not cache.get("uploadsInProgress") and not cache.get("uploadsQueued"):
                return None
            time.sleep(0.1)
        return f"uploads to {vol.ds.name!r} did not finish within {FLUSH_SECONDS:.0f}s"

    def _stop(self, vol: Volume, wait: float = STOP_SECONDS) -> None:
        """rclone exits by itself once unmounted; else TERM, then KILL (its PID only)."""
        if vol.proc is not None:
            try:
                vol.proc.wait(wait)
            except subprocess.TimeoutExpired:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.kill(vol.proc.pid, sig)
                        vol.proc.wait(STOP_SECONDS)
                        break
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        continue
        if vol.config and os.path.exists(vol.config):
            os.unlink(vol.config)
        if vol.workdir:
            shutil.rmtree(vol.workdir, ignore_errors=True)
        cache = os.path.join(self.run_dir, "rclone")
        if all(v.mode != FUSE for v in self.volumes):
            shutil.rmtree(cache, ignore_errors=True)

    def _stage_out(self, vol: Volume) -> None:
        start = time.time()
        now = _walk(vol.target)
        changed = [rel for rel, st in now.items() if vol.state.get(rel) != st]
        if changed:
            vol.ds.upload_files([os.path.join(vol.target, rel) for rel in changed], target_path=vol.sub,
                                overwrite=True, show_progress=False, relative_root=vol.target)
        self.log(f"{vol.what}: {len(changed)} new or changed files uploaded to {vol.ds.name!r} "
                 f"({time.time() - start:.2f}s)")


def _walk(folder: str) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            out[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime_ns)
    return out


def _tail(path: str, limit: int = 400) -> str:
    try:
        with open(path, errors="replace") as fh:
            return fh.read()[-limit:].strip()
    except OSError:
        return ""


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, socket_path: str):
        super().__init__("localhost", timeout=10)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(self.socket_path)
        self.sock = sock


def _rc(socket_path: str, command: str) -> dict[str, Any]:
    """One call of rclone's remote control over its unix socket."""
    conn = _UnixHTTP(socket_path)
    try:
        conn.request("POST", f"/{command}", body=b"{}", headers={"Content-Type": "application/json"})
        body = conn.getresponse().read()
    finally:
        conn.close()
    data = json.loads(body or b"{}")
    return data if isinstance(data, dict) else {}

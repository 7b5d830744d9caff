"""SSHTransport: commands over SSH and files over one long-lived SFTP session per host.

The connection and its SFTP channel are opened once and reused (link.py: host keys always
checked, a broken link raises NodeUnreachable and reconnects in the background). The files of
the runs the engine follows come pushed over one more channel (push.py); while it lives, the
listings, metrics reads and small state files of those runs are answered from what it pushed,
and SFTP is the fallback.
"""
from __future__ import annotations

import os
import posixpath
import shlex
import stat
import time
from pathlib import Path
from typing import Any

import paramiko

from ..transport import Transport
from .link import NodeUnreachable, SSHLink, fingerprint, host_label
from .push import SMALL, HostPush

# The engine polls every node many times a second; over SSH, listings and empty reads are
# answered from a short-lived cache so polling costs the node (and the job) little. Reading a
# status.json that exists drops the cache: after it, every listing is fresh (no last line lost).
POLL_TTL = float(os.environ.get("BATCHAI_SSH_POLL_SECONDS", "0.25"))
POLLED_FILES = ("heartbeat", "state", "status.json")  # the agent's small files the engine polls


class SSHTransport(Transport):
    """One host of an ssh cluster."""

    def __init__(self, host: str, port: int, user: str | None, key_file: str | None,
                 known_hosts: str | None):
        self.link = SSHLink(host, port, user, key_file, known_hosts)
        self._cache: dict[tuple[str, Any], tuple[float, Any]] = {}
        #: the runs' files pushed over one channel (push.py); the calls below answer from it
        self.push = HostPush(self.link, self._cache.clear)
        self.follow, self.unfollow, self.pushes = self.push.follow, self.push.unfollow, self.push.pushes

    @property
    def host(self) -> str:
        return self.link.host

    @property
    def port(self) -> int:
        return self.link.port

    @property
    def label(self) -> str:
        return self.link.label

    def __repr__(self) -> str:
        return f"SSHTransport({self.label})"

    def connect(self) -> paramiko.SSHClient:
        """The live connection (see SSHLink.connect)."""
        return self.link.connect()

    def close(self) -> None:
        self.push.close()
        self.link.close()

    # -- Transport ------------------------------------------------------------------------------
    def run(self, argv: list[str], timeout: float = 60) -> tuple[int, str, str]:
        return self.link.exec(" ".join(shlex.quote(a) for a in argv), timeout)

    def _cached(self, key: tuple[str, Any]) -> Any:
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < POLL_TTL:
            return hit[1]
        return None

    def read_from(self, path: str, offset: int, limit: int = 4 << 20) -> bytes:
        pushed = self.push.live(path)
        if pushed is not None and path == pushed.paths.metrics:
            got = pushed.read_metrics(offset, limit)
            if got is not None:
                return got
        head = pushed.heads.get(path) if pushed is not None and offset == 0 else None
        if head is not None and limit <= len(head):  # the tail's look at a ./logs file's start
            return head[:limit]
        if self._cached(("empty", (path, offset))) is not None:
            return b""
        data = self._read_from(path, offset, limit)
        if not data:
            self._cache[("empty", (path, offset))] = (time.monotonic(), True)
        return data

    def _read_from(self, path: str, offset: int, limit: int) -> bytes:
        def read(sftp: paramiko.SFTPClient) -> bytes:
            try:
                with sftp.open(path, "rb") as fh:
                    fh.seek(offset)
                    chunks, left = [], limit
                    while left > 0:
                        chunk = fh.read(min(left, 32768))
                        if not chunk:
                            break
                        chunks.append(chunk)
                        left -= len(chunk)
                    return b"".join(chunks)
            except FileNotFoundError:
                return b""
        data = self.link.io(read)
        self.push.note_sftp(path, len(data))
        return data

    def read_bytes(self, path: str) -> bytes | None:
        name = posixpath.basename(path)
        pushed = self.push.live(path) if name in SMALL else None
        if pushed is not None:  # status.json comes once it exists: missing until then
            return pushed.small.get(path)
        polled = name in POLLED_FILES
        if polled:
            hit = self._cached(("read", path))
            if hit is not None:
                return hit[0]

        def read(sftp: paramiko.SFTPClient) -> bytes | None:
            try:
                with sftp.open(path, "rb") as fh:
                    return fh.read()
            except FileNotFoundError:
                return None
        data = self.link.io(read)
        if data is not None and name == "status.json":
            self._cache.clear()  # the node's files are final now: read them fresh
        elif polled:
            self._cache[("read", path)] = (time.monotonic(), (data,))
        return data

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644) -> None:
        def write(sftp: paramiko.SFTPClient) -> None:
            self.link.makedirs(sftp, posixpath.dirname(path))
            tmp = f"{path}.tmp{os.getpid()}"
            with sftp.open(tmp, "wb") as fh:
                fh.chmod(mode)
                fh.write(data)
            sftp.posix_rename(tmp, path)
        self.link.io(write)
        self._cache.clear()

    def list_files(self, folder: str) -> dict[str, int]:
        pushed = self.push.live(folder)
        if pushed is not None and folder in pushed.sources:
            start = len(folder) + 1
            return {p[start:]: size for p, size in list(pushed.sizes.items()) if p.startswith(folder + "/")}
        hit = self._cached(("list", folder))
        if hit is not None:
            return dict(hit)
        listing = self._list_files(folder)
        self._cache[("list", folder)] = (time.monotonic(), listing)
        return dict(listing)

    def _list_files(self, folder: str) -> dict[str, int]:
        def walk(sftp: paramiko.SFTPClient) -> dict[str, int]:
            out: dict[str, int] = {}
            stack = [""]
            while stack:
                rel = stack.pop()
                try:
                    entries = sftp.listdir_attr(posixpath.join(folder, rel) if rel else folder)
                except FileNotFoundError:
                    continue
                for entry in entries:
                    sub = f"{rel}/{entry.filename}" if rel else entry.filename
                    mode = entry.st_mode or 0
                    if stat.S_ISDIR(mode):
                        stack.append(sub)
                    elif stat.S_ISREG(mode):
                        out[sub] = int(entry.st_size or 0)
            return out
        return self.link.io(walk)

    def get_file(self, path: str, local_path: Path) -> None:
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = local_path.with_name(local_path.name + f".tmp{os.getpid()}")
        self.link.io(lambda sftp: sftp.get(path, str(tmp)))
        os.replace(tmp, local_path)

    def put_file(self, local_path: Path, path: str, mode: int = 0o644) -> None:
        def put(sftp: paramiko.SFTPClient) -> None:
            self.link.makedirs(sftp, posixpath.dirname(path))
            tmp = f"{path}.tmp{os.getpid()}"
            sftp.put(str(local_path), tmp, confirm=True)
            sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, path)
        self.link.io(put)
        self._cache.clear()

    def exists(self, path: str) -> bool:
        def check(sftp: paramiko.SFTPClient) -> bool:
            try:
                sftp.stat(path)
                return True
            except FileNotFoundError:
                return False
        return self.link.io(check)

    def home(self) -> str:
        """The login's home folder (to expand ~ in node_root)."""
        return self.link.io(lambda sftp: sftp.normalize("."))

    def info(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "down_since": self.link.down_since,
                "last_error": self.link.last_error}


__all__ = ["NodeUnreachable", "SSHTransport", "fingerprint", "host_label"]

"""SSHTransport: commands over SSH and files over one long-lived SFTP session per host.

The engine tails logs every tick, so the connection and its SFTP channel are opened once and
reused. Host keys are checked against the cluster's known_hosts and never added: an unknown or
changed key is a ClusterError naming the host and the key's SHA256 fingerprint. A broken link
raises NodeUnreachable (an OSError) and reconnects are rate-limited so that a dead host cannot
stall the engine loop on every call.
"""
from __future__ import annotations

import base64
import hashlib
import os
import posixpath
import shlex
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import paramiko

from ...errors import ClusterError
from ..transport import Transport

T = TypeVar("T")
CONNECT_TIMEOUT = float(os.environ.get("BATCHAI_SSH_CONNECT_TIMEOUT", "5"))
IO_TIMEOUT = float(os.environ.get("BATCHAI_SSH_IO_TIMEOUT", "5"))
RETRY_SECONDS = 2.0
# The engine polls every node many times a second; over SSH, listings and empty reads are
# answered from a short-lived cache so polling costs the node (and the job) little. Reading a
# status.json that exists drops the cache: after it, every listing is fresh (no last line lost).
POLL_TTL = float(os.environ.get("BATCHAI_SSH_POLL_SECONDS", "0.25"))
POLLED_FILES = ("heartbeat", "state", "status.json")  # the agent's small files the engine polls


class NodeUnreachable(ConnectionError):
    """The host does not answer (refused, timed out, connection dropped)."""


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: SHA256:<base64 of the key blob's sha256, unpadded>."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_label(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _Reject(paramiko.MissingHostKeyPolicy):
    """Unknown host: refuse, naming the key so the user can check it and add it."""

    def __init__(self, known_hosts: str):
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise ClusterError(f"host {hostname}: unknown host key {key.get_name()} {fingerprint(key)} "
                           f"(not in {self.known_hosts}); check it and add it with "
                           f"ssh-keyscan, it is never accepted automatically")


class SSHTransport(Transport):
    """One host of an ssh cluster."""

    def __init__(self, host: str, port: int, user: str | None, key_file: str | None,
                 known_hosts: str | None):
        self.host, self.port, self.user = host, int(port), user
        self.key_file = os.path.expanduser(key_file) if key_file else None
        self.known_hosts = os.path.expanduser(known_hosts or "~/.ssh/known_hosts")
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.RLock()
        self._down_since: float | None = None
        self._last_try = 0.0
        self._last_error = ""
        self._dirs: set[str] = set()
        self._reconnecting: threading.Thread | None = None
        self._cache: dict[tuple[str, Any], tuple[float, Any]] = {}

    @property
    def label(self) -> str:
        return host_label(self.host, self.port)

    def __repr__(self) -> str:
        return f"SSHTransport({self.label})"

    # -- connection ----------------------------------------------------------------------------
    def connect(self) -> paramiko.SSHClient:
        """The live connection. The first one is opened here (its error is the caller's); once a
        host went down, reconnects happen in the background and callers fail fast meanwhile."""
        with self._lock:
            client = self._client
            if client is not None and client.get_transport() is not None \
                    and client.get_transport().is_active():
                return client
            self._drop()
            if self._down_since is not None:
                self._reconnect_later()
                raise NodeUnreachable(f"host {self.label} unreachable: {self._last_error}")
            self._client = self._open()
            return self._client

    def _reconnect_later(self) -> None:
        if self._reconnecting is not None and self._reconnecting.is_alive():
            return
        if time.time() - self._last_try < RETRY_SECONDS:
            return
        self._last_try = time.time()

        def attempt() -> None:
            try:
                client = self._open()
            except Exception as exc:  # noqa: BLE001 — stays down with the reason
                self._last_error = f"{type(exc).__name__}: {exc}"
                return
            with self._lock:
                self._drop()
                self._client, self._down_since = client, None

        self._reconnecting = threading.Thread(target=attempt, daemon=True)
        self._reconnecting.start()

    def _open(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if not os.path.exists(self.known_hosts):
            raise ClusterError(f"host {self.label}: known_hosts file {self.known_hosts} does not exist")
        client.load_host_keys(self.known_hosts)
        client.set_missing_host_key_policy(_Reject(self.known_hosts))
        try:
            client.connect(self.host, self.port, username=self.user, key_filename=self.key_file,
                           timeout=CONNECT_TIMEOUT, banner_timeout=CONNECT_TIMEOUT,
                           auth_timeout=CONNECT_TIMEOUT, allow_agent=False,
                           look_for_keys=self.key_file is None)
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise ClusterError(
                f"host {self.label}: host key changed: it presented {exc.key.get_name()} "
                f"{fingerprint(exc.key)} but {self.known_hosts} has "
                f"{fingerprint(exc.expected_key)}; refusing to connect") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise ClusterError(f"host {self.label}: authentication failed for user "
                               f"{self.user!r} with key {self.key_file}: {exc}") from None
        except ClusterError:
            client.close()
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            self._mark_down(exc)
            raise NodeUnreachable(f"host {self.label} unreachable: {self._last_error}") from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(5)
        return client

    def _mark_down(self, exc: BaseException) -> None:
        self._last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self._down_since is None:
            self._down_since = time.time()
        self._last_try = time.time()

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self.connect().open_sftp()
            self._sftp.get_channel().settimeout(IO_TIMEOUT)
        return self._sftp

    def _drop(self) -> None:
        for thing in (self._sftp, self._client):
            try:
                if thing is not None:
                    thing.close()
            except Exception:  # noqa: BLE001 — closing a dead connection
                pass
        self._sftp, self._client = None, None
        self._dirs.clear()

    def _io(self, what: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run an SFTP call; a broken connection becomes NodeUnreachable (and is re-opened later)."""
        with self._lock:
            try:
                return what(self._sftp_client())
            except (FileNotFoundError, PermissionError, IsADirectoryError, ClusterError,
                    NodeUnreachable):
                raise
            except IOError as exc:
                if getattr(exc, "errno", None) is not None and not isinstance(exc, (socket.timeout, EOFError)):
                    raise  # a real file error reported by the server
                self._mark_down(exc)
                self._drop()
                raise NodeUnreachable(f"host {self.label} unreachable: {self._last_error}") from None
            except (paramiko.SSHException, EOFError, socket.error) as exc:
                self._mark_down(exc)
                self._drop()
                raise NodeUnreachable(f"host {self.label} unreachable: {self._last_error}") from None

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- Transport ------------------------------------------------------------------------------
    def run(self, argv: list[str], timeout: float = 60) -> tuple[int, str, str]:
        line = " ".join(shlex.quote(a) for a in argv)
        with self._lock:
            client = self.connect()
            try:
                stdin, stdout, stderr = client.exec_command(line, timeout=timeout)
                stdin.close()
                out = stdout.read().decode("utf-8", "replace")
                err = stderr.read().decode("utf-8", "replace")
                code = stdout.channel.recv_exit_status()
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self._mark_down(exc)
                self._drop()
                raise NodeUnreachable(f"host {self.label} unreachable: {self._last_error}") from None
        return code, out, err

    def _cached(self, key: tuple[str, Any]) -> Any:
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < POLL_TTL:
            return hit[1]
        return None

    def read_from(self, path: str, offset: int, limit: int = 4 << 20) -> bytes:
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
        return self._io(read)

    def read_bytes(self, path: str) -> bytes | None:
        name = posixpath.basename(path)
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
        data = self._io(read)
        if data is not None and name == "status.json":
            self._cache.clear()  # the node's files are final now: read them fresh
        elif polled:
            self._cache[("read", path)] = (time.monotonic(), (data,))
        return data

    def _makedirs(self, sftp: paramiko.SFTPClient, folder: str) -> None:
        if folder in self._dirs or folder in ("", "/"):
            return
        try:
            if stat.S_ISDIR(sftp.stat(folder).st_mode or 0):
                self._dirs.add(folder)
                return
        except FileNotFoundError:
            pass
        self._makedirs(sftp, posixpath.dirname(folder))
        try:
            sftp.mkdir(folder)
        except IOError:
            if not stat.S_ISDIR(sftp.stat(folder).st_mode or 0):
                raise
        self._dirs.add(folder)

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644) -> None:
        def write(sftp: paramiko.SFTPClient) -> None:
            self._makedirs(sftp, posixpath.dirname(path))
            tmp = f"{path}.tmp{os.getpid()}"
            with sftp.open(tmp, "wb") as fh:
                fh.chmod(mode)
                fh.write(data)
            sftp.posix_rename(tmp, path)
        self._io(write)
        self._cache.clear()

    def list_files(self, folder: str) -> dict[str, int]:
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
        return self._io(walk)

    def get_file(self, path: str, local_path: Path) -> None:
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = local_path.with_name(local_path.name + f".tmp{os.getpid()}")
        self._io(lambda sftp: sftp.get(path, str(tmp)))
        os.replace(tmp, local_path)

    def put_file(self, local_path: Path, path: str, mode: int = 0o644) -> None:
        def put(sftp: paramiko.SFTPClient) -> None:
            self._makedirs(sftp, posixpath.dirname(path))
            tmp = f"{path}.tmp{os.getpid()}"
            sftp.put(str(local_path), tmp, confirm=True)
            sftp.chmod(tmp, mode)
            sftp.posix_rename(tmp, path)
        self._io(put)
        self._cache.clear()

    def exists(self, path: str) -> bool:
        def check(sftp: paramiko.SFTPClient) -> bool:
            try:
                sftp.stat(path)
                return True
            except FileNotFoundError:
                return False
        return self._io(check)

    def home(self) -> str:
        """The login's home folder (to expand ~ in node_root)."""
        return self._io(lambda sftp: sftp.normalize("."))

    def info(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "down_since": self._down_since,
                "last_error": self._last_error}

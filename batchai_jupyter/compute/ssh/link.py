"""SSHLink: one host's SSH connection and SFTP session, opened once and kept.

Host keys are checked against the cluster's known_hosts and never added: an unknown or changed
key is a ClusterError naming the host and the key's SHA256 fingerprint. A broken link raises
NodeUnreachable (an OSError) and reconnects happen in the background, rate-limited, so that a
dead host cannot stall the engine loop on every call. SSHTransport (transport.py) is the
Transport over it.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import posixpath
import socket
import stat
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import paramiko

from ...errors import ClusterError, NodeRefused

T = TypeVar("T")
CONNECT_TIMEOUT = float(os.environ.get("BATCHAI_SSH_CONNECT_TIMEOUT", "5"))
IO_TIMEOUT = float(os.environ.get("BATCHAI_SSH_IO_TIMEOUT", "5"))
RETRY_SECONDS = 2.0


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
        raise NodeRefused(f"host {hostname}: unknown host key {key.get_name()} {fingerprint(key)} "
                           f"(not in {self.known_hosts}); check it and add it with "
                           f"ssh-keyscan, it is never accepted automatically")


class SSHLink:
    """The connection to one host (user, key, known_hosts), shared by its Transport's calls."""

    def __init__(self, host: str, port: int, user: str | None, key_file: str | None,
                 known_hosts: str | None):
        self.host, self.port, self.user = host, int(port), user
        self.key_file = os.path.expanduser(key_file) if key_file else None
        self.known_hosts = os.path.expanduser(known_hosts or "~/.ssh/known_hosts")
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.RLock()
        self.down_since: float | None = None
        self._last_try = 0.0
        self.last_error = ""
        self.dirs: set[str] = set()  # folders known to exist on the host
        self._reconnecting: threading.Thread | None = None

    @property
    def label(self) -> str:
        return host_label(self.host, self.port)

    def connect(self) -> paramiko.SSHClient:
        """The live connection. The first one is opened here (its error is the caller's); once a
        host went down, reconnects happen in the background and callers fail fast meanwhile."""
        with self._lock:
            client = self._client
            if client is not None and client.get_transport() is not None \
                    and client.get_transport().is_active():
                return client
            self.drop()
            if self.down_since is not None:
                self._reconnect_later()
                raise NodeUnreachable(f"host {self.label} unreachable: {self.last_error}")
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
                self.last_error = f"{type(exc).__name__}: {exc}"
                return
            with self._lock:
                self.drop()
                self._client, self.down_since = client, None

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
            raise NodeRefused(
                f"host {self.label}: host key changed: it presented {exc.key.get_name()} "
                f"{fingerprint(exc.key)} but {self.known_hosts} has "
                f"{fingerprint(exc.expected_key)}; refusing to connect") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            # retrying with the same key cannot succeed: refused, so runs fail instead of waiting
            # (the node is still probed again with backoff, and usable once the key is accepted)
            raise NodeRefused(f"host {self.label}: authentication failed for user "
                              f"{self.user!r} with key {self.key_file}: {exc}") from None
        except ClusterError:
            client.close()
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()
            self.mark_down(exc)
            raise NodeUnreachable(f"host {self.label} unreachable: {self.last_error}") from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(5)
        return client

    def mark_down(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.down_since is None:
            self.down_since = time.time()
        self._last_try = time.time()

    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self.connect().open_sftp()
            self._sftp.get_channel().settimeout(IO_TIMEOUT)
        return self._sftp

    def drop(self) -> None:
        for thing in (self._sftp, self._client):
            if thing is not None:
                with contextlib.suppress(Exception):  # closing a dead connection
                    thing.close()
        self._sftp, self._client = None, None
        self.dirs.clear()

    def io(self, what: Callable[[paramiko.SFTPClient], T]) -> T:
        """Run an SFTP call; a broken connection becomes NodeUnreachable (and is re-opened later)."""
        with self._lock:
            try:
                return what(self.sftp())
            except (FileNotFoundError, PermissionError, IsADirectoryError, ClusterError,
                    NodeUnreachable):
                raise
            except OSError as exc:
                if getattr(exc, "errno", None) is not None and not isinstance(exc, (socket.timeout, EOFError)):
                    raise  # a real file error reported by the server
                self.mark_down(exc)
                self.drop()
                raise NodeUnreachable(f"host {self.label} unreachable: {self.last_error}") from None
            except (paramiko.SSHException, EOFError) as exc:
                self.mark_down(exc)
                self.drop()
                raise NodeUnreachable(f"host {self.label} unreachable: {self.last_error}") from None

    def close(self) -> None:
        with self._lock:
            self.drop()

    def exec(self, line: str, timeout: float) -> tuple[int, str, str]:
        """Run a shell command line to completion: (exit code, stdout, stderr)."""
        with self._lock:
            client = self.connect()
            try:
                stdin, stdout, stderr = client.exec_command(line, timeout=timeout)
                stdin.close()
                out = stdout.read().decode("utf-8", "replace")
                err = stderr.read().decode("utf-8", "replace")
                code = stdout.channel.recv_exit_status()
            except (paramiko.SSHException, EOFError, OSError) as exc:
                self.mark_down(exc)
                self.drop()
                raise NodeUnreachable(f"host {self.label} unreachable: {self.last_error}") from None
        return code, out, err

    def makedirs(self, sftp: paramiko.SFTPClient, folder: str) -> None:
        """Create a folder and its parents (remembered until the connection drops)."""
        if folder in self.dirs or folder in ("", "/"):
            return
        try:
            if stat.S_ISDIR(sftp.stat(folder).st_mode or 0):
                self.dirs.add(folder)
                return
        except FileNotFoundError:
            pass
        self.makedirs(sftp, posixpath.dirname(folder))
        try:
            sftp.mkdir(folder)
        except OSError:
            if not stat.S_ISDIR(sftp.stat(folder).st_mode or 0):
                raise
        self.dirs.add(folder)

"""HostPush: the followed runs' file growth, pushed by one watcher per host over one exec channel.

The engine would otherwise poll every file of every remote run over SFTP on each pass, one round
trip at a time. Instead a reader thread per host runs `python -m batchai_jupyter.node.push` on
the host's existing connection and receives its frames (the protocol is in node/push.py):

* log bytes (stdouterr/, ./logs, artifacts/) are appended to the run's workspace copies right
  here, under the run's tail lock (engine/tail.py), at the copy's own size: a frame that repeats
  bytes the copy has is cut, one that would leave a gap is skipped (the engine's SFTP tail fills
  it), so no byte is lost or doubled whichever path delivered it; a stream wakes on the copy;
* metrics.jsonl bytes, the listings' sizes and the agent's small files (state, heartbeat,
  status.json) are kept as a mirror that SSHTransport answers from while the channel lives;
* a change of state or status, or new metrics, touches the run's files folder, whose parent the
  engine loop watches for runs pushed this way (it wakes and steps that run; log lines alone
  wake no one but the streams).

A run counts as pushed once the watcher sent all of its files once (`synced`) and only while a
frame came within SILENT seconds. A channel that drops (killed watcher, host gone, engine
restart) leaves the runs to the SFTP tail, and a new channel starts again from the sizes of the
workspace copies. One thread and one lock per host: a slow or dead host delays no other.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko

from ...node.paths import RunPaths
from .link import SSHLink

log = logging.getLogger("batchai_jupyter.engine")
SILENT = 5.0       # a channel without a frame this long is given up (the watcher beats every second)
RETRY = 2.0        # between channel starts
IDLE_CLOSE = 10.0  # a channel that follows no run this long ends (its watcher leaves the host)
SMALL = ("state", "heartbeat", "status.json")
#: BATCHAI_SSH_PUSH=0 leaves every run to the SFTP tail (a host whose sshd refuses exec channels)
ENABLED = os.environ.get("BATCHAI_SSH_PUSH", "1") != "0"


class Follow:
    """One node of one run: where its pushed bytes go, and the mirror of what the node has."""

    def __init__(self, paths: RunPaths, tail: Any, index: int):
        self.paths = paths
        self.run_dir = paths.run_dir
        self.tail = tail      # engine/tail.py RunTail: files, sizes, lock
        self.index = index
        log_prefix = "logs/" if index == 0 else f"logs/node-{index}/"
        self.sources = {paths.stdouterr: "", paths.logs: log_prefix, paths.artifacts: ""}
        self.synced = False
        self.sizes: dict[str, int] = {}               # node path -> bytes the node has
        self.small: dict[str, bytes | None] = {}
        self.heads: dict[str, bytes] = {}             # ./logs file -> its first bytes (the tail compares)
        self.metrics: tuple[int, bytearray] | None = None  # (offset of its first byte, bytes)
        self.lock = threading.Lock()                  # the metrics buffer
        self.pushed = 0                               # bytes appended from frames
        self.sftp = 0                                 # bytes of the logs read over SFTP instead

    def dest(self, path: str) -> str | None:
        """The workspace copy (relative to the run's files) of a node file."""
        for source, prefix in self.sources.items():
            if path.startswith(source + "/"):
                return prefix + path[len(source) + 1:]
        return None

    def reset(self) -> None:
        self.synced = False
        self.sizes, self.small, self.heads, self.metrics = {}, {}, {}, None

    def offsets(self) -> dict[str, int]:
        """What the engine holds already: the copies' sizes, and the metrics offset stored."""
        files: Path = self.tail.files
        out: dict[str, int] = {}
        for source, prefix in self.sources.items():
            base = files / prefix if prefix else files
            for root, dirs, names in os.walk(base):
                rel_root = os.path.relpath(root, base)
                if rel_root == ".":
                    dirs[:] = [d for d in dirs if not (prefix == "" and d in ("logs", "outputs"))
                               and not (prefix == "logs/" and d.startswith("node-"))]
                for name in names:
                    rel = name if rel_root == "." else f"{rel_root}/{name}"
                    with contextlib.suppress(OSError):
                        out[f"{source}/{rel}"] = os.stat(os.path.join(root, name)).st_size
        for (_node, path), offset in list(self.tail.metric_offsets.items()):
            if path == self.paths.metrics:
                out[path] = int(offset)
        return out

    def wake(self) -> None:
        """The engine loop watches the run's files folder for runs pushed this way."""
        with contextlib.suppress(OSError):
            os.utime(self.tail.files)

    def append(self, path: str, offset: int, data: bytes, reset: bool = False) -> None:
        """Bytes of a log file at offset: into the copy from its own size, under the tail lock
        (reset: the node file got shorter, so the copy starts anew with them, as the tail does)."""
        rel = self.dest(path)
        if rel is None:
            return
        with self.tail.lock:
            self.sizes[path] = offset + len(data)
            dest = self.tail.files / rel
            try:
                have = 0 if reset else dest.stat().st_size
            except FileNotFoundError:
                have = 0
            if offset > have or offset + len(data) <= have:
                return  # a gap (the SFTP tail fills it) or bytes the copy has
            chunk = memoryview(data)[have - offset:]
            if reset:
                self.tail.heads.pop(rel, None)
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(dest, "wb" if reset else "ab", buffering=0) as out:
                    while chunk:
                        written = out.write(chunk) or 0
                        chunk = chunk[written:]
                        have += written
                        self.pushed += written
            except OSError:
                pass  # a full disk: the tail notes it and goes on from what reached the copy
            finally:
                self.tail.sizes[rel] = have

    def add_metrics(self, offset: int, data: bytes) -> None:
        with self.lock:
            self.sizes[self.paths.metrics] = offset + len(data)
            if self.metrics is None:
                self.metrics = (offset, bytearray(data))
                return
            start, buf = self.metrics
            end = start + len(buf)
            if offset > end or offset < start:
                self.metrics = None  # not contiguous: the SFTP read answers
            else:
                buf += data[end - offset:]

    def read_metrics(self, offset: int, limit: int) -> bytes | None:
        """metrics.jsonl from offset out of the mirror (what is before offset is dropped)."""
        with self.lock:
            if self.metrics is None:
                return None
            start, buf = self.metrics
            if not start <= offset <= start + len(buf):
                return None
            del buf[:offset - start]
            self.metrics = (offset, buf)
            return bytes(buf[:limit])


class HostPush:
    """The push channel of one host and the runs it follows."""

    def __init__(self, link: SSHLink, on_unsynced_append: Callable[[], None] = lambda: None):
        """on_unsynced_append: bytes reached a copy while the SFTP tail still lists the run (its
        cached listing is stale now: a size below the copy's would read as a rewrite)."""
        self.link = link
        self._on_unsynced_append = on_unsynced_append
        self.python = "python3"
        self._follows: dict[str, Follow] = {}
        self._lock = threading.Lock()        # _follows and the channel's stdin; never held over I/O waits
        self._wanted = threading.Event()
        self._closed = False
        self._chan: paramiko.Channel | None = None
        self._last_frame = 0.0
        self._thread: threading.Thread | None = None

    # -- the engine's side ----------------------------------------------------------------------
    def follow(self, paths: RunPaths, tail: Any, index: int, python: str) -> None:
        """Push this node's files of the run from now on (idempotent: every driver step asks)."""
        if not ENABLED or paths.run_dir in self._follows:
            return
        f = Follow(paths, tail, index)
        with self._lock:
            self.python = python
            self._follows[paths.run_dir] = f
        self._send({"follow": f.run_dir, "offsets": f.offsets()})
        self._wanted.set()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._serve, name=f"push-{self.link.label}", daemon=True)
            self._thread.start()

    def unfollow(self, paths: RunPaths) -> None:
        with self._lock:
            f = self._follows.pop(paths.run_dir, None)
        if f is not None:
            self._send({"unfollow": f.run_dir})
            log.info("run folder %s on host %s: %d log bytes pushed, %d read over SFTP",
                     paths.key, self.link.label, f.pushed, f.sftp)

    def live(self, path: str) -> Follow | None:
        """The followed run of a node path, while its files come through a live channel."""
        if self._chan is None or time.monotonic() - self._last_frame > SILENT:
            return None
        for run_dir, f in list(self._follows.items()):
            if path.startswith(run_dir) and (len(path) == len(run_dir) or path[len(run_dir)] == "/"):
                return f if f.synced else None
        return None

    def pushes(self, run_dir: str) -> bool:
        """Whether the run's files on this host arrive through the channel now."""
        return self.live(run_dir) is not None

    def note_sftp(self, path: str, nbytes: int) -> None:
        for run_dir, f in list(self._follows.items()):
            if path.startswith(run_dir + "/") and f.dest(path) is not None:
                f.sftp += nbytes

    def close(self) -> None:
        self._closed = True
        self._wanted.set()
        self._drop()

    # -- the reader thread ------------------------------------------------------------------------
    def _send(self, msg: dict[str, Any]) -> None:
        with self._lock:
            chan = self._chan
            if chan is None:
                return  # the next channel is told every run it follows
            try:
                chan.sendall((json.dumps(msg) + "\n").encode())
            except (OSError, paramiko.SSHException, EOFError):
                pass  # the reader sees the channel end

    def _drop(self) -> None:
        with self._lock:
            chan, self._chan = self._chan, None
        if chan is not None:
            with contextlib.suppress(Exception):
                chan.close()
        for f in list(self._follows.values()):
            f.reset()

    def _serve(self) -> None:
        while not self._closed:
            if not self._follows:
                self._wanted.clear()
                self._wanted.wait(5.0)
                continue
            idle = False
            try:
                idle = self._session()
            except Exception as exc:  # noqa: BLE001 -- the SFTP tail goes on; tried again soon
                log.debug("push channel to %s: %s", self.link.label, exc)
            self._drop()
            if not idle:
                time.sleep(RETRY)

    def _session(self) -> bool:
        """One channel, until it fails (False) or followed no run for IDLE_CLOSE (True)."""
        transport = self.link.connect().get_transport()
        if transport is None:
            return False
        chan = transport.open_session(timeout=SILENT)
        chan.settimeout(1.0)
        chan.exec_command(f"exec {shlex.quote(self.python)} -m batchai_jupyter.node.push")
        self._last_frame = time.monotonic()
        with self._lock:
            self._chan = chan
            follows = list(self._follows.values())
        for f in follows:
            self._send({"follow": f.run_dir, "offsets": f.offsets()})
        buf = bytearray()
        idle_since = time.monotonic()
        while not self._closed:
            if self._follows:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_CLOSE:
                return True
            try:
                data = chan.recv(1 << 20)
            except TimeoutError:
                data = None
            if data == b"":
                return False  # the watcher ended
            if data:
                buf += data
                self._last_frame = time.monotonic()
                self._frames(buf)
            elif time.monotonic() - self._last_frame > SILENT:
                return False
        return False

    def _frames(self, buf: bytearray) -> None:
        at = 0
        while len(buf) - at >= 4:
            (hlen,) = struct.unpack_from(">I", buf, at)
            if len(buf) - at < 4 + hlen:
                break
            head = json.loads(bytes(buf[at + 4:at + 4 + hlen]))
            n = int(head.get("n", 0))
            if len(buf) - at < 4 + hlen + n:
                break
            data = bytes(buf[at + 4 + hlen:at + 4 + hlen + n])
            at += 4 + hlen + n
            self._handle(head, data)
        del buf[:at]

    def _handle(self, head: dict[str, Any], data: bytes) -> None:
        kind = head.get("t")
        if kind == "beat":
            return
        path = str(head.get("p") or head.get("run") or "")
        f = next((f for run_dir, f in list(self._follows.items())
                  if path == run_dir or path.startswith(run_dir + "/")), None)
        if f is None:
            return
        if kind == "data":
            if path == f.paths.metrics:
                f.add_metrics(int(head["o"]), data)
                f.wake()
            else:
                f.append(path, int(head["o"]), data, bool(head.get("reset")))
                if not f.synced:
                    self._on_unsynced_append()
        elif kind == "head":
            f.heads[path] = data
        elif kind == "file":
            f.small[path] = None if head.get("none") else data
            if not path.endswith("/heartbeat"):
                f.wake()
        elif kind == "synced":
            if not f.synced:
                log.info("run folder %s: files pushed from host %s", f.paths.key, self.link.label)
            f.synced = True
            f.wake()

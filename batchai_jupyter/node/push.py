"""The node side of an ssh host's push channel: the run files the engine follows, as frames on stdout.

    python -m batchai_jupyter.node.push

The engine (compute/ssh/push.py) starts one per host over an exec channel and writes JSON lines
to its stdin: {"follow": <run folder>, "offsets": {<node path>: <bytes the engine holds>}} and
{"unfollow": <run folder>}. For each followed run the watcher sends what grows past those offsets
in stdouterr/, wd/logs/, artifacts/ and metrics.jsonl, and the agent's small files (state,
heartbeat, status.json) whenever they change. A frame is a 4-byte big-endian header length, a
JSON header and `n` bytes of data:

    {"t": "data", "p": path, "o": offset, "n": len}   bytes of a file from offset ("reset": the
                                                      file got shorter, these start it anew)
    {"t": "head", "p": path, "n": len}                the first HEAD bytes of a ./logs file, when
                                                      they change (before its data)
    {"t": "file", "p": path, "n": len, "none": bool}  a small file's whole content (none: missing)
    {"t": "synced", "run": folder}                    every file of the run was sent once
    {"t": "beat"}                                     at least once a second: the channel lives

status.json is sent after a pass that started once it existed, so every byte the job wrote comes
before it; the run is then dropped. Changes wake the watcher through inotify (fs_events.py), with
a stat pass every POLL seconds as the fallback (every 20 ms where inotify is missing).
"""
from __future__ import annotations

import json
import os
import re
import select
import struct
import sys
import time
from typing import BinaryIO

from .fs_events import FolderEvents
from .paths import RunPaths

POLL = 0.5           # the fallback pass while inotify watches the folders
POLL_NO_EVENTS = 0.02
BEAT = 1.0
CHUNK = 1 << 20      # the most bytes of one file in one frame
HEAD = 64            # the start of a ./logs file the engine compares (engine/tail.py HEAD_BYTES)
SMALL = ("state", "heartbeat", "status.json")
_AGENT_TMP = re.compile(r"\.tmp\d+$")  # written under this name, then renamed into place


def frame(header: dict[str, object], data: bytes = b"") -> bytes:
    """One frame: header length, JSON header (with n = len(data)), data."""
    head = json.dumps({**header, "n": len(data)}).encode()
    return struct.pack(">I", len(head)) + head + data


class RunWatch:
    """One followed run: what of its files was sent."""

    def __init__(self, run_dir: str, offsets: dict[str, int]):
        self.paths = RunPaths.of_run_dir(run_dir)
        self.run_dir = run_dir
        self.offsets = dict(offsets)
        self.small: dict[str, bytes | None] = {}
        self.heads: dict[str, bytes] = {}
        self.synced = False

    def folders(self) -> list[str]:
        """The folders whose changes matter (subfolders of ./logs are found by the passes)."""
        p = self.paths
        out = [os.path.dirname(p.run_dir), p.run_dir, p.stdouterr, p.artifacts, p.logs]
        for base in (p.logs, p.artifacts):
            for root, dirs, _files in os.walk(base):
                out += [os.path.join(root, d) for d in dirs]
        return out

    def files(self) -> list[str]:
        p = self.paths
        out = [p.metrics]
        for base in (p.stdouterr, p.logs, p.artifacts):
            for root, _dirs, names in os.walk(base):
                out += [os.path.join(root, n) for n in names if not _AGENT_TMP.search(n)]
        return out

    def pass_(self, out: BinaryIO) -> bool:
        """Send what changed; True once the run ended and everything was sent."""
        ended = os.path.exists(self.paths.status)  # before the files: their last bytes are in
        for path in self.files():
            self._send_growth(path, out)
        for name in SMALL:
            path = f"{self.run_dir}/{name}"
            if name == "status.json" and not ended:
                continue
            try:
                with open(path, "rb") as fh:
                    content: bytes | None = fh.read()
            except (FileNotFoundError, NotADirectoryError):
                content = None
            if path not in self.small or self.small[path] != content:
                self.small[path] = content
                out.write(frame({"t": "file", "p": path, "none": content is None}, content or b""))
        if not self.synced:
            self.synced = True
            out.write(frame({"t": "synced", "run": self.run_dir}))
        return ended

    def _send_growth(self, path: str, out: BinaryIO) -> None:
        try:
            size = os.stat(path).st_size
        except OSError:
            return
        offset = self.offsets.get(path, 0)
        reset = size < offset  # rewritten shorter: sent again from the start, the copy made anew
        if path.startswith(self.paths.logs + "/"):
            reset = self._send_head(path, out) or reset
        if reset:
            offset = 0
        if size == offset:
            self.offsets[path] = offset
            return
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                while offset < size:
                    data = fh.read(min(CHUNK, size - offset))
                    if not data:
                        break
                    out.write(frame({"t": "data", "p": path, "o": offset, "reset": reset}, data))
                    reset = False
                    offset += len(data)
        except OSError:
            return
        self.offsets[path] = offset


    def _send_head(self, path: str, out: BinaryIO) -> bool:
        """Send a ./logs file's first bytes when they changed; True when they changed under
        bytes already sent (rewritten in place: the file is sent anew)."""
        try:
            with open(path, "rb") as fh:
                head = fh.read(HEAD)
        except OSError:
            return False
        known = self.heads.get(path)
        if known == head:
            return False
        self.heads[path] = head
        out.write(frame({"t": "head", "p": path}, head))
        return known is not None and not head.startswith(known)


class Watcher:
    """Every followed run of this host, a pass whenever something changed."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.runs: dict[str, RunWatch] = {}
        self.events = FolderEvents()
        self._pending = b""

    def command(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            return
        if "follow" in msg:
            run_dir = str(msg["follow"])
            self.runs[run_dir] = RunWatch(run_dir, {str(k): int(v) for k, v in msg.get("offsets", {}).items()})
        elif "unfollow" in msg:
            self.runs.pop(str(msg["unfollow"]), None)

    def read_stdin(self, fd: int) -> bool:
        """Take the engine's commands; False once stdin closed (the engine went)."""
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        for line in lines:
            if line.strip():
                self.command(line)
        return True

    def serve(self) -> int:
        stdin = sys.stdin.fileno()
        os.set_blocking(stdin, False)
        last_beat = 0.0
        while True:
            for run_dir in [r for r, w in self.runs.items() if w.pass_(self.out)]:
                del self.runs[run_dir]
            now = time.monotonic()
            if now - last_beat >= BEAT:
                self.out.write(frame({"t": "beat"}))
                last_beat = now
            self.out.flush()
            folders = [f for w in self.runs.values() for f in w.folders()]
            self.events.watch(folders)
            fds = [stdin] + ([self.events.fileno()] if self.events.active else [])
            timeout = min(BEAT, POLL if self.events.active else POLL_NO_EVENTS)
            ready, _, _ = select.select(fds, [], [], timeout)
            if stdin in ready and not self.read_stdin(stdin):
                return 0
            if len(ready) > (stdin in ready):
                self.events.wait(0)  # drain: the pass above reads everything anyway
                self.events.take_changed()


def main() -> int:
    try:
        return Watcher(sys.stdout.buffer).serve()
    except (BrokenPipeError, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    sys.exit(main())

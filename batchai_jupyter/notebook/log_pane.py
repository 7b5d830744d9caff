"""The live log pane: one anywidget that gets only what is new in the followed file.

The kernel never resends the pane: each poll sends the bytes written since the last one
(`append`); a view opened later, or a switch of file, gets the kept tail once (`reset`). The
browser side (static/log_pane.js) draws them like a terminal and follows the tail unless the
user scrolled up.

"open full log" downloads the file from the server extension's file route
(`<base_url>/batchai/api/v1/runs/{run_id}/files/{file_path}`) when that server serves this run;
only where it does not (no extension, another workspace, VS Code) is the file sent through the
widget connection (`full`), at most FULL_LOG_MAX_BYTES of it, and the browser says it was cut.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
from traitlets import Int, Unicode

from ..view.terminal import MAX_LINES, RawTail, ScreenBuffer, tail_offset

STATIC = Path(__file__).parent / "static"
#: the file sent through the widget connection by "open full log" is cut there (the server
#: route has no such limit)
FULL_LOG_MAX_BYTES = 32 << 20


class LogPane(anywidget.AnyWidget):
    """Follows one run file; `poll()` sends what was written since the last call.

    Parameters
    ----------
    path: the file to follow (it may not exist yet).
    max_lines: lines kept in the pane; earlier ones are counted and reachable as the full log.
    run_id: the run whose file it is (the browser asks the server for the file by it).
    root: the run's files folder; `path` relative to it is the name the server knows.
    """

    _esm = STATIC / "log_pane.js"
    _css = STATIC / "log_pane.css"
    pane_id = Unicode("").tag(sync=True)
    max_lines = Int(MAX_LINES).tag(sync=True)
    file = Unicode("").tag(sync=True)
    run_id = Unicode("").tag(sync=True)
    file_path = Unicode("").tag(sync=True)
    #: "open full log" through the widget connection sends at most this much of the file
    full_max_bytes = FULL_LOG_MAX_BYTES

    def __init__(self, path: Path, max_lines: int = MAX_LINES, run_id: str = "",
                 root: Path | None = None, **kwargs: Any):
        self._root = root
        super().__init__(pane_id=uuid.uuid4().hex, max_lines=max_lines, file=path.name,
                         run_id=run_id, file_path=self._relative(path), **kwargs)
        self._lock = threading.RLock()
        self._seq = 0
        self.sent_bytes = 0  # text handed to the front end (the benchmark reads it)
        self.listeners: list[Callable[[str], None]] = []
        self.on_msg(self._on_front_end)
        self._follow(path, "")
        self.poll(send=False)  # what is there already reaches a view with its first sync

    def _relative(self, path: Path) -> str:
        """The file's name in the run (what the server's file route takes); "" outside it."""
        if self._root is None:
            return ""
        try:
            return path.relative_to(self._root).as_posix()
        except ValueError:
            return ""

    def _follow(self, path: Path, first: str) -> None:
        self.path = path
        self._tail = RawTail(path)
        offset, earlier = tail_offset(path, self.max_lines)
        self._tail.skip_to(offset)
        self.screen = ScreenBuffer(self.max_lines, earlier)
        self.screen.feed(first)

    # -- kernel side ---------------------------------------------------------------------------
    def switch(self, path: Path, first: str = "") -> None:
        """Follow another file (or the same file anew, after `first`: a requeue's marker line)."""
        with self._lock:
            self._follow(path, first)
            self.file = path.name
            self.file_path = self._relative(path)
            self.poll(send=False)
            self._reset()

    def poll(self, send: bool = True) -> bool:
        """Read new bytes and send them; True when there were any."""
        with self._lock:
            text, restarted = self._tail.read()
            if restarted:
                self.screen = ScreenBuffer(self.max_lines)
            if not text and not restarted:
                return False
            self.screen.feed(text)
            if send:
                if restarted:
                    self._reset()
                else:
                    self._seq += 1
                    self._deliver({"kind": "append", "seq": self._seq, "text": text})
            for listener in self.listeners:
                listener(text)
            return True

    @property
    def text(self) -> str:
        """What the pane shows (raw: escapes and redraws as the job wrote them)."""
        return self.screen.text

    def _reset(self) -> None:
        self._deliver({"kind": "reset", "seq": self._seq, "text": self.screen.text,
                    "earlier": self.screen.earlier, "file": self.file})

    def _deliver(self, content: dict[str, Any]) -> None:
        self.sent_bytes += len(content.get("text", ""))
        if self.comm is not None:
            self.send(content)

    # -- messages from the browser ---------------------------------------------------------------
    def _on_front_end(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("kind") if isinstance(content, dict) else None
        with self._lock:
            if kind == "sync":
                self._reset()
            elif kind == "full":
                self._deliver(self._full())

    def _full(self) -> dict[str, Any]:
        """The `full` message: the file's first `full_max_bytes`, its size and whether it was cut
        (the browser then says so, with where the whole file is)."""
        size = 0
        try:
            with open(self.path, "rb") as fh:
                data = fh.read(self.full_max_bytes)
                size = max(len(data), fh.seek(0, 2))
        except OSError as exc:
            data = f"cannot read {self.path}: {exc}".encode()
        if len(data) < size:  # cut on a line boundary, so the last line shown is a whole one
            data = data[:data.rfind(b"\n") + 1] or data
        return {"kind": "full", "file": self.file, "path": str(self.path), "size": size,
                "shown": len(data), "truncated": len(data) < size,
                "text": data.decode("utf-8", "replace")}

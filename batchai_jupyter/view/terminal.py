"""A log file as a terminal shows it: raw bytes followed from an offset, `\\r` redraws and ANSI
escapes understood, the last lines kept with a count of those dropped.

The live log pane sends what `RawTail.read` returns to the browser as it is (the browser's
terminal draws it); `ScreenBuffer` keeps what a newly opened view needs, and `screen_text`
gives the plain text a static summary shows.
"""
from __future__ import annotations

import codecs
import re
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]")
#: the pane keeps this many lines; earlier ones are counted and stay in the file
MAX_LINES = 5000


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def collapse_cr(line: str) -> str:
    """One line as a terminal leaves it: each `\\r` returns to the start and what follows
    overwrites (a progress bar's refreshes end as its last state)."""
    if "\r" not in line and "\x08" not in line:
        return line
    out: list[str] = []
    col = 0
    for ch in line:
        if ch == "\r":
            col = 0
        elif ch == "\x08":
            col = max(0, col - 1)
        elif col < len(out):
            out[col] = ch
            col += 1
        else:
            out.append(ch)
            col += 1
    return "".join(out)


def screen_text(text: str) -> str:
    """Plain text of terminal output: escapes removed, `\\r` redraws collapsed."""
    return "\n".join(collapse_cr(line) for line in strip_ansi(text).split("\n"))


class RawTail:
    """New text of one file since the last read, decoded incrementally (a character cut between
    two reads is completed by the next); a file that got shorter is read again from the start."""

    def __init__(self, path: Path, max_read: int = 8 << 20):
        self.path = path
        self.offset = 0
        self.max_read = max_read
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def read(self) -> tuple[str, bool]:
        """(new text, restarted): restarted when the file was replaced by a shorter one."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return "", False
        restarted = size < self.offset
        if restarted:
            self.offset = 0
            self._decoder.reset()
        if size == self.offset:
            return "", restarted
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(min(size - self.offset, self.max_read))
        self.offset += len(data)
        return self._decoder.decode(data), restarted

    def skip_to(self, offset: int) -> None:
        """Start reading at `offset` (a line start): the pane shows only the file's tail."""
        self.offset = offset
        self._decoder.reset()


def tail_offset(path: Path, max_lines: int, max_bytes: int = 4 << 20) -> tuple[int, int]:
    """(offset of the first of the last `max_lines` lines, lines before it) of a file; the
    count of earlier lines is exact (the file is counted once, in blocks)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0, 0
    if size <= max_bytes // 4:
        return 0, 0
    start = max(0, size - max_bytes)
    with open(path, "rb") as fh:
        fh.seek(start)
        block = fh.read()
        cut = block.find(b"\n") + 1 if start else 0
        tail = block[cut:]
        ends = [m.end() for m in re.finditer(b"\n", tail)]
        if len(ends) > max_lines:
            cut += ends[-max_lines - 1]
        offset = start + cut
        fh.seek(0)
        earlier = 0
        remaining = offset
        while remaining > 0:
            chunk = fh.read(min(remaining, 1 << 20))
            if not chunk:
                break
            earlier += chunk.count(b"\n")
            remaining -= len(chunk)
    return offset, earlier


class ScreenBuffer:
    """The last `max_lines` lines of what was fed (raw, escapes kept) and the unfinished last
    line; what a view opened mid-run is sent to start from."""

    def __init__(self, max_lines: int = MAX_LINES, earlier: int = 0):
        self.max_lines = max_lines
        self.earlier = earlier
        self.lines: list[str] = []
        self.partial = ""

    def feed(self, text: str) -> None:
        if not text:
            return
        parts = (self.partial + text).split("\n")
        self.partial = parts.pop()
        # a finished line keeps only its final redraw: resending a bar's refreshes is waste
        self.lines.extend(collapse_cr(p) if "\r" in p else p for p in parts)
        extra = len(self.lines) - self.max_lines
        if extra > 0:
            del self.lines[:extra]
            self.earlier += extra
        if len(self.partial) > 1 << 20:  # a line that never ends: keep its tail
            self.partial = collapse_cr(self.partial)[-(1 << 20):]

    @property
    def text(self) -> str:
        body = "\n".join(self.lines)
        return (body + "\n" if self.lines else "") + self.partial

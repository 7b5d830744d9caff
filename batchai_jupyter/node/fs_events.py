"""Sleep until a watched folder changes: Linux inotify through libc, a plain sleep elsewhere.

The engine and run streams poll files on a short tick; with this they wake as soon as a job
writes a line or an agent changes a run's state, and the tick stays only as the fallback (a
missed or overflowed event costs at most one tick, never a line: every wake-up reads the files
as a tick would). Watches are folders, not recursive; a folder that does not exist yet is
tried again at the next `watch()`. A queue overflow (events the kernel dropped) reports every
watched folder as changed, so the caller looks at everything once.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import time
from collections.abc import Iterable, Iterator

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
CHANGES = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE


def inotify_libc() -> ctypes.CDLL | None:
    """libc with its inotify calls typed (None where there is no inotify)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1  # noqa: B018 -- present only where the kernel interface is
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


def parse_events(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(watch descriptor, mask, name) of each event in what one read of an inotify fd gave."""
    at = 0
    while at + 16 <= len(data):
        wd, mask, _cookie, length = struct.unpack_from("iIII", data, at)
        yield wd, mask, data[at + 16:at + 16 + length].rstrip(b"\0")
        at += 16 + length


class FolderEvents:
    """A set of watched folders and a wait that ends on the first change in any of them."""

    def __init__(self, ignore: tuple[str, ...] = (), settle: float = 0.0) -> None:
        """ignore: name prefixes whose changes wake nobody (a heartbeat written every second), and
        with them temporary files (".tmp" in the name: their rename into place is the event).
        settle: files that only grew (a job printing block by block) end a wait at most once per
        `settle` seconds, so a fast writer costs one look per interval, not one per write; any
        other change (a file renamed into place, created, deleted) ends it at once."""
        self._settle = settle
        self._woke = -settle  # monotonic time the last wait ended on a change
        self._urgent = False  # a change other than growth since the last read
        self._ignore = tuple(os.fsencode(x) for x in ignore)
        self._libc = inotify_libc()
        self._fd = -1
        if self._libc is not None:
            self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        self._watches: dict[str, int] = {}
        self._changed: set[int] = set()  # watch descriptors with a change since take_changed()
        self._wanted: frozenset[str] = frozenset()  # what the last watch() asked for
        self._added: set[str] = set()  # folders newly watched since take_added()
        self._overflow = False  # the kernel dropped events since take_changed()

    @property
    def active(self) -> bool:
        """Whether changes wake the wait (False: it only sleeps)."""
        return self._fd >= 0

    def fileno(self) -> int:
        """The inotify descriptor (-1 when inactive), for a select() over more than its events."""
        return self._fd

    def watch(self, folders: Iterable[str]) -> bool:
        """Watch exactly these folders from now on (new ones added, the others dropped).

        True when a folder is newly watched: what changed in it before is not an event, so the
        caller looks once more before it waits."""
        if self._fd < 0 or self._libc is None:
            return False
        wanted = frozenset(folders)
        if wanted == self._wanted and len(self._watches) == len(wanted):
            return False  # the same folders, all watched: nothing to ask the kernel
        self._wanted = wanted
        added = False
        for folder in [f for f in self._watches if f not in wanted]:
            self._libc.inotify_rm_watch(self._fd, self._watches.pop(folder))
        for folder in wanted - self._watches.keys():
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), CHANGES)
            if wd >= 0:  # else not there (yet), or the watch limit: the tick covers it
                self._watches[folder] = wd
                self._added.add(folder)
                added = True
        return added

    def take_added(self) -> set[str]:
        """The folders newly watched since the last call (what changed in them before is no event)."""
        added, self._added = self._added, set()
        return added

    def wait(self, timeout: float) -> bool:
        """Until a change in a watched folder (True) or the timeout (False)."""
        if self._fd < 0:
            time.sleep(max(0.0, timeout))
            return False
        end = time.monotonic() + max(0.0, timeout)
        growth = False  # files grew; the wait ends when `settle` is over
        while True:
            ready, _, _ = select.select([self._fd], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                if growth:
                    self._woke = time.monotonic()
                return growth
            changed = False
            try:
                while True:  # what changed does not matter (a pass reads everything); gone watches do
                    changed = self._read(os.read(self._fd, 65536)) or changed
            except BlockingIOError:
                pass
            if changed:
                now = time.monotonic()
                if self._urgent or now >= self._woke + self._settle:
                    self._woke, self._urgent = now, False
                    return True
                growth, end = True, min(end, self._woke + self._settle)  # more of it ends as one

    def take_changed(self) -> set[str]:
        """The watched folders that changed since the last call (what woke the waits)."""
        if self._overflow:  # events were lost: every folder may have changed
            self._overflow, self._changed = False, set()
            return set(self._watches)
        by_wd = {wd: folder for folder, wd in self._watches.items()}
        changed, self._changed = self._changed, set()
        return {by_wd[wd] for wd in changed if wd in by_wd}

    def _read(self, data: bytes) -> bool:
        """Whether the events hold a change; drops the watches the kernel removed (a deleted
        folder, or one dropped by watch()), so a folder made again is watched anew (a watched
        folder that went counts as a change: the caller watches again). An overflow is a change
        of every folder."""
        gone, changed = set(), False
        for wd, mask, name in parse_events(data):
            if mask & IN_Q_OVERFLOW:
                self._overflow = changed = self._urgent = True
            if mask & IN_IGNORED:
                gone.add(wd)
            if mask & CHANGES and not (name.startswith(self._ignore) or (self._ignore and b".tmp" in name)):
                changed = True
                self._urgent = self._urgent or bool(mask & ~IN_MODIFY)
                self._changed.add(wd)
        if gone:
            before = len(self._watches)
            self._watches = {f: w for f, w in self._watches.items() if w not in gone}
            changed = changed or len(self._watches) < before
            self._urgent = self._urgent or len(self._watches) < before
        return changed

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        self._watches.clear()
        self._wanted = frozenset()

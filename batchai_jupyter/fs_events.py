"""Sleep until a watched folder changes: Linux inotify through libc, a plain sleep elsewhere.

The engine and run streams poll files on a short tick; with this they wake as soon as a job
writes a line or an agent changes a run's state, and the tick stays only as the fallback (a
missed or overflowed event costs at most one tick, never a line: every wake-up reads the files
as a tick would). Watches are folders, not recursive; a folder that does not exist yet is
tried again at the next `watch()`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import time
from collections.abc import Iterable

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_IGNORED = 0x8000
CHANGES = IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1  # noqa: B018 -- present only where the kernel interface is
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


class FolderEvents:
    """A set of watched folders and a wait that ends on the first change in any of them."""

    def __init__(self, ignore: tuple[str, ...] = ()) -> None:
        """ignore: name prefixes whose changes wake nobody (a heartbeat written every second), and
        with them temporary files (".tmp" in the name: their rename into place is the event)."""
        self._ignore = tuple(os.fsencode(x) for x in ignore)
        self._libc = _libc()
        self._fd = -1
        if self._libc is not None:
            self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        self._watches: dict[str, int] = {}
        self._changed: set[int] = set()  # watch descriptors with a change since take_changed()

    @property
    def active(self) -> bool:
        """Whether changes wake the wait (False: it only sleeps)."""
        return self._fd >= 0

    def watch(self, folders: Iterable[str]) -> bool:
        """Watch exactly these folders from now on (new ones added, the others dropped).

        True when a folder is newly watched: what changed in it before is not an event, so the
        caller looks once more before it waits."""
        if self._fd < 0 or self._libc is None:
            return False
        added = False
        wanted = set(folders)
        for folder in [f for f in self._watches if f not in wanted]:
            self._libc.inotify_rm_watch(self._fd, self._watches.pop(folder))
        for folder in wanted - set(self._watches):
            wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), CHANGES)
            if wd >= 0:  # else not there (yet), or the watch limit: the tick covers it
                self._watches[folder] = wd
                added = True
        return added

    def wait(self, timeout: float) -> bool:
        """Until a change in a watched folder (True) or the timeout (False)."""
        if self._fd < 0:
            time.sleep(max(0.0, timeout))
            return False
        end = time.monotonic() + max(0.0, timeout)
        while True:
            ready, _, _ = select.select([self._fd], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                return False
            changed = False
            try:
                while True:  # what changed does not matter (a pass reads everything); gone watches do
                    changed = self._read(os.read(self._fd, 65536)) or changed
            except BlockingIOError:
                pass
            if changed:
                return True

    def take_changed(self) -> set[str]:
        """The watched folders that changed since the last call (what woke the waits)."""
        by_wd = {wd: folder for folder, wd in self._watches.items()}
        changed, self._changed = self._changed, set()
        return {by_wd[wd] for wd in changed if wd in by_wd}

    def _read(self, data: bytes) -> bool:
        """Whether the events hold a change; drops the watches the kernel removed (a deleted
        folder, or one dropped by watch()), so a folder made again is watched anew."""
        gone, changed, at = set(), False, 0
        while at + 16 <= len(data):
            wd, mask, _cookie, length = struct.unpack_from("iIII", data, at)
            if mask & IN_IGNORED:
                gone.add(wd)
            name = data[at + 16:at + 16 + length].rstrip(b"\0")
            if mask & CHANGES and not (name.startswith(self._ignore) or (self._ignore and b".tmp" in name)):
                changed = True
                self._changed.add(wd)
            at += 16 + length
        if gone:
            self._watches = {f: w for f, w in self._watches.items() if w not in gone}
        return changed

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        self._watches.clear()

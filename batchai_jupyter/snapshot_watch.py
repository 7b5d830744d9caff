"""Knowing that a source folder is unchanged since its last snapshot without walking it again.

A notebook re-submits the same folder over and over; each re-submit otherwise costs a stat of
every file. After a walk, the folders it listed stay watched (Linux inotify, one instance per
source folder, armed on each folder *before* it is listed, so no write after the listing goes
unseen). The next snapshot of that folder in the same process reads the queued events without
blocking: none means nothing under it changed, and the walk is skipped; any event, a lost watch
or a queue overflow means a full walk, which arms a fresh watch.

Watches are kept only where an event is sure for every change a job's sources can see: local
filesystems (a network filesystem reports no other client's writes), no file with a second hard
link (a write through a link in an unwatched folder reaches no watch here), at most MAX_FOLDERS
folders, and in the process that armed them (a forked child never reads its parent's events).
A write through a shared memory map is the one change inotify does not report; such a folder
can turn watching off with BATCHAI_SNAPSHOT_WATCH=0 (docs/reference/snapshots.md).
"""
from __future__ import annotations

import ctypes
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .node.fs_events import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_DONT_FOLLOW,
    IN_IGNORED,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    inotify_libc,
    parse_events,
)

MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW)
MAX_FOLDERS = 1000   # more folders than this: walk each time (watches are a per-user resource)
MAX_SOURCES = 2      # source folders a store keeps watched (inotify instances are too)
#: statfs f_type of the filesystems whose every write the local kernel sees.
LOCAL_FILESYSTEMS = frozenset({
    0xEF53,       # ext2/3/4
    0x58465342,   # xfs
    0x9123683E,   # btrfs
    0x01021994,   # tmpfs
    0x794C7630,   # overlayfs
    0x2FC12FC1,   # zfs
    0xF2F52010,   # f2fs
})


def filesystem_type(path: str) -> int | None:
    """statfs(2)'s f_type of the filesystem holding `path` (None where it cannot be asked)."""
    libc = inotify_libc()
    if libc is None or not hasattr(libc, "statfs"):
        return None
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    if libc.statfs(os.fsencode(path), buf) != 0:
        return None
    width = ctypes.sizeof(ctypes.c_long)  # f_type is the first field, a native long
    return int(struct.unpack_from("l" if width == 8 else "i", buf.raw)[0]) & 0xFFFFFFFF


class FolderWatch:
    """One inotify instance over the folders one walk of a source listed."""

    def __init__(self, libc: ctypes.CDLL, fd: int, ignored: Iterable[str]) -> None:
        self._libc, self._fd, self._pid = libc, fd, os.getpid()
        self._ignored = {os.fsencode(p) for p in ignored}  # absolute paths whose events mean nothing
        self._folders: dict[int, bytes] = {}
        self.complete = True  # False once a folder could not be watched

    def add(self, folder: str) -> None:
        """Watch `folder` (before it is listed); past the limit or on failure, the watch is
        incomplete and will not vouch for anything."""
        if not self.complete:
            return
        if len(self._folders) >= MAX_FOLDERS:
            self.complete = False
            return
        name = os.fsencode(folder)
        wd = self._libc.inotify_add_watch(self._fd, name, MASK)
        if wd < 0:
            self.complete = False
        else:
            self._folders[wd] = name

    def quiet(self) -> bool:
        """Whether nothing changed under the watched folders since they were armed (events are
        read and dropped: one change is enough to make the watch useless)."""
        if self._fd < 0 or os.getpid() != self._pid or not self.complete:
            return False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if self._changes(data):
                return False

    def _changes(self, data: bytes) -> bool:
        for wd, mask, name in parse_events(data):
            if mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF):
                return True
            folder = self._folders.get(wd)
            if folder is None:
                return True
            if name and os.path.join(folder, name) in self._ignored:
                continue  # e.g. the workspace's own folder inside the source
            return True
        return False

    def close(self) -> None:
        if self._fd >= 0 and os.getpid() == self._pid:
            os.close(self._fd)
        self._fd = -1


@dataclass
class Watched:
    """What a quiet watch vouches for: the folder's files and links as its last walk found them,
    and the store's hash cache as it was saved then (a cache file changed since, e.g. by a prune
    in another process, means the objects may be gone: a walk)."""

    files: dict[str, list]
    links: dict[str, str]
    cache: dict = field(default_factory=dict)
    stamp: tuple[int, int, int] | None = None  # the cache file's (inode, mtime, size) then


class SourceWatches:
    """The watched source folders of one snapshot store, the latest MAX_SOURCES of them."""

    def __init__(self) -> None:
        self._libc = inotify_libc() if os.environ.get("BATCHAI_SNAPSHOT_WATCH", "1") != "0" else None
        self._kept: OrderedDict[tuple, tuple[FolderWatch, Watched]] = OrderedDict()
        self._lock = threading.Lock()

    def unchanged(self, key: tuple) -> Watched | None:
        """What the last walk of `key` found, if nothing under it changed since (a copy the
        caller may change)."""
        with self._lock:
            got = self._kept.get(key)
            if got is None:
                return None
            watch, watched = got
            if not watch.quiet():
                del self._kept[key]
                watch.close()
                return None
            self._kept.move_to_end(key)
        return Watched(dict(watched.files), dict(watched.links), watched.cache, watched.stamp)

    def start(self, source: str, ignored: Iterable[str]) -> FolderWatch | None:
        """A new watch for one walk of `source` (None where watching cannot be trusted there)."""
        if self._libc is None or filesystem_type(source) not in LOCAL_FILESYSTEMS:
            return None
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None  # the per-user limit of instances: walk every time
        return FolderWatch(self._libc, fd, ignored)

    def keep(self, key: tuple, watch: FolderWatch, watched: Watched) -> None:
        """Keep `watch` for `key` (replacing the one before), the oldest beyond MAX_SOURCES closed."""
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                old[0].close()
            self._kept[key] = (watch, watched)
            while len(self._kept) > MAX_SOURCES:
                self._kept.popitem(last=False)[1][0].close()

    def close(self) -> None:
        with self._lock:
            for watch, _watched in self._kept.values():
                watch.close()
            self._kept.clear()

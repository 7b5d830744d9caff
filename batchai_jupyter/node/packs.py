"""Packs: many small snapshot objects in one file, so a snapshot of 2,000 small files writes two
files instead of 2,000 (creating a file costs far more than writing a few kB into an open one).

    <objects>/packs/<name>.pack   the objects' bytes, one after another
    <objects>/packs/<name>.idx    {"pack": "<name>.pack", "objects": {digest: [offset, size]}}

The index is written after its pack (and renamed into place), so a pack is seen only once it is
whole; both are never changed afterwards. An object is looked up loose first
(`<objects>/<h[:2]>/<h[2:]>`), then in the packs. Standard library only: node agents read packs
where the node's object cache is the workspace's store (local clusters).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time

PACKS = "packs"
INDEX_SUFFIX = ".idx"
PACK_SUFFIX = ".pack"

FRESH_NS = 2_000_000_000
Location = tuple[str, int, int]  # pack path, offset, size


def packs_dir(objects_dir: str) -> str:
    return os.path.join(objects_dir, PACKS)


class PackIndex:
    """digest -> where it lies in a pack, for every pack of one object folder (read once, then
    again only when the packs folder changed)."""

    def __init__(self, objects_dir: str):
        self.folder = packs_dir(str(objects_dir))
        self._where: dict[str, Location] = {}
        self._seen: set[str] = set()   # index files read
        self._stamp: int | None = None  # the packs folder's mtime_ns when last listed
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Read the indexes written since the last look (one stat when nothing changed)."""
        with self._lock:
            try:
                stamp = os.stat(self.folder).st_mtime_ns
            except OSError:
                return
            if stamp == self._stamp and time.time_ns() - stamp > FRESH_NS:
                return  # a folder changed within the clock's step could show the same stamp
            self._stamp = stamp
            try:
                names = [n for n in os.listdir(self.folder) if n.endswith(INDEX_SUFFIX) and n not in self._seen]
            except OSError:
                return
            for name in names:
                try:
                    with open(os.path.join(self.folder, name), "rb") as fh:
                        data = json.load(fh)
                    pack = os.path.join(self.folder, str(data["pack"]))
                    where = {str(d): (pack, int(o), int(s)) for d, (o, s) in data["objects"].items()}
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # a half-written index is not there yet; a broken one never counts
                self._where.update(where)
                self._seen.add(name)

    def get(self, digest: str) -> Location | None:
        """Where the object lies, or None (it is loose, or not in this folder)."""
        found = self._where.get(digest)
        if found is None:
            self.refresh()
            found = self._where.get(digest)
        return found

    def peek(self, digest: str) -> Location | None:
        """get() without looking at the folder again (after one refresh() for many look-ups)."""
        return self._where.get(digest)

    def items(self) -> list[tuple[str, Location]]:
        self.refresh()
        return list(self._where.items())

    def forget(self, index_name: str) -> None:
        """A pack was removed (retention): its objects are no longer here."""
        with self._lock:
            self._seen.discard(index_name)
            pack = os.path.join(self.folder, index_name[:-len(INDEX_SUFFIX)] + PACK_SUFFIX)
            self._where = {d: w for d, w in self._where.items() if w[0] != pack}
            self._stamp = None


def read_at(where: Location) -> bytes:
    """One object's bytes (a short read is an OSError: a pack is never changed)."""
    pack, offset, size = where
    fd = os.open(pack, os.O_RDONLY)
    try:
        data = os.pread(fd, size, offset) if size else b""
    finally:
        os.close(fd)
    if len(data) != size:
        raise OSError(f"{pack}: the object at {offset} is cut short ({len(data)} of {size} bytes)")
    return data


class PackReader:
    """Reads objects out of packs keeping each pack open (one open per pack, not per object)."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def read(self, where: Location) -> bytes:
        pack, offset, size = where
        fd = self._fds.get(pack)
        if fd is None:
            fd = self._fds[pack] = os.open(pack, os.O_RDONLY)
        data = os.pread(fd, size, offset) if size else b""
        if len(data) != size:
            raise OSError(f"{pack}: object at {offset} is cut short ({len(data)} of {size} bytes)")
        return data

    def packs(self) -> list[str]:
        return list(self._fds)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def pack_index(objects: dict[str, bytes]) -> tuple[str, str]:
    """A pack's name (from its digests) and its index's JSON text, for these objects in order."""
    name = hashlib.sha256("".join(objects).encode()).hexdigest()[:32]
    index: dict[str, list[int]] = {}
    offset = 0
    for digest, data in objects.items():
        index[digest] = [offset, len(data)]
        offset += len(data)
    return name, json.dumps({"pack": name + PACK_SUFFIX, "objects": index}, separators=(",", ":"))


def index_digests(raw: bytes | None) -> set[str] | None:
    """The digests an index's bytes name; None for a missing, half-written or broken index."""
    try:
        return {str(d) for d in json.loads(raw or b"")["objects"]}
    except (ValueError, KeyError, TypeError):
        return None


def write_pack(objects_dir: str, objects: dict[str, bytes]) -> str:
    """One pack and its index: the pack whole on disk (its one fsync) before the index that
    makes it seen is renamed into place; returns the index's path."""
    folder = packs_dir(objects_dir)
    os.makedirs(folder, exist_ok=True)
    name, index_text = pack_index(objects)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".in-")
    try:
        with os.fdopen(fd, "wb", buffering=0) as fh:
            _write_all(fh.fileno(), list(objects.values()))
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(folder, name + PACK_SUFFIX))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".in-")
        with os.fdopen(fd, "w") as fh:
            fh.write(index_text)
        os.replace(tmp, os.path.join(folder, name + INDEX_SUFFIX))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return os.path.join(folder, name + INDEX_SUFFIX)


def _write_all(fd: int, buffers: list[bytes]) -> None:
    """writev in batches the kernel takes (no joined copy of the whole pack in memory)."""
    views = [memoryview(b) for b in buffers if b]
    while views:
        batch = views[:1024]
        done = os.writev(fd, batch)
        for i, view in enumerate(batch):
            if done < len(view):
                views = [view[done:], *batch[i + 1:], *views[len(batch):]]
                break
            done -= len(view)
        else:
            views = views[len(batch):]


def prune_packs(objects_dir: str, wanted: set[str], before: float,
                dry_run: bool) -> list[tuple[str, int, set[str]]]:
    """(index path, bytes, digests) of each pack indexed before `before` of which no object is
    wanted; removed (index first, so it is never seen half gone) unless dry_run."""
    folder = packs_dir(objects_dir)
    doomed: list[tuple[str, int, set[str]]] = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if not name.endswith(INDEX_SUFFIX):
            continue
        index = os.path.join(folder, name)
        pack = index[:-len(INDEX_SUFFIX)] + PACK_SUFFIX
        try:
            if os.lstat(index).st_mtime >= before:
                continue
            with open(index, "rb") as fh:
                digests = set(json.load(fh)["objects"])
            size = os.lstat(pack).st_size if os.path.exists(pack) else 0
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if digests & wanted:
            continue
        doomed.append((index, size, digests))
        if not dry_run:
            os.unlink(index)
            if os.path.exists(pack):
                os.unlink(pack)
    return doomed

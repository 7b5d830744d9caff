"""Snapshots: which files of a source directory a job gets, and the content-addressed store.

A snapshot is a manifest (relative path -> content hash, size, mode) saved under
snapshots/manifests/<id>.json, its content in snapshots/objects/: a large file as its own object
(<h[:2]>/<h[2:]>), the small files a snapshot adds together in one pack (node/packs.py), so a
first snapshot of 2,000 small files writes two files, not 2,000. A (size, mtime, ctime) cache
means an unchanged file is neither read nor hashed twice; objects already in the store are not
copied again and do not count against the limits (docs/reference/snapshots.md).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .errors import SnapshotError
from .node.packs import PackIndex, prune_packs, read_at, write_pack
from .snapshot_walk import ALWAYS_EXCLUDED, Scan, WalkedFile, scan, walk
from .snapshot_watch import SourceWatches, Watched

__all__ = ["ALWAYS_EXCLUDED", "DEFAULT_MAX_BYTES", "DEFAULT_MAX_FILES", "Snapshot", "SnapshotStore",
           "iter_digests", "walk"]
DEFAULT_MAX_BYTES = 300 * 1024 * 1024
DEFAULT_MAX_FILES = 2000
RECENT_MANIFESTS = 8  # parsed manifests a store keeps (manifest())
PACK_MAX_OBJECT = 256 * 1024  # files up to this size go into the snapshot's pack
PACK_MIN_OBJECTS = 8          # fewer new small objects than this are stored loose
#: A file changed less than this before the walk that cached it may change again within the
#: same step of the filesystem's clock, unseen by (size, mtime, ctime): it is read again next time.
RACY_NS = 20_000_000
RACY_COARSE_NS = 2_000_000_000  # the same on filesystems that keep whole seconds
Progress = Callable[[int, int], None]  # (bytes done, bytes total)
CacheEntry = tuple[int, int, str, int, int]  # size, mtime_ns, digest, mode, ctime_ns


@dataclass
class Snapshot:
    """The result of taking a snapshot: its id, manifest and what was new."""

    id: str
    files: dict[str, list]  # rel -> [digest, size, mode]
    links: dict[str, str] = field(default_factory=dict)
    new_files: int = 0
    new_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(v[1] for v in self.files.values())


# -- the store ------------------------------------------------------------------------------
class SnapshotStore:
    """snapshots/ of a workspace: objects, manifests and the (size, mtime) hash cache."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.manifests = self.root / "manifests"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.manifests.mkdir(parents=True, exist_ok=True)
        self._recent: dict[str, tuple[str, dict, list[str]]] = {}  # id -> its manifest's text, parsed, digests
        self._recent_lock = threading.Lock()
        self._packs = PackIndex(str(self.objects))
        self._watches = SourceWatches()
        weakref.finalize(self, self._watches.close)  # its inotify instances go with the store

    def _cache_path(self, src: Path) -> Path:
        return self.root / "cache" / (hashlib.sha1(str(src).encode()).hexdigest() + ".pickle")

    def _load_cache(self, src: Path) -> dict[str, Any]:
        """{"files": rel -> CacheEntry, "last": the previous snapshot} (one pickle: a few ms for
        thousands of files)."""
        try:
            with open(self._cache_path(src), "rb") as fh:
                return pickle.load(fh)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError):
            return {}

    def _save_cache(self, src: Path, cache: dict[str, Any]) -> None:
        path = self._cache_path(src)
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".in-")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(cache, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    def object_path(self, digest: str) -> Path:
        """The object as a file of its own; a packed one is written out loose on first ask
        (for what copies files, e.g. a send to a remote node's cache)."""
        path = self.objects / digest[:2] / digest[2:]
        if not path.exists():
            where = self._packs.get(digest)
            if where is not None:
                self._put_loose(digest, read_at(where))
        return path

    def object_size(self, digest: str) -> int:
        """An object's bytes, loose or packed, without reading it (OSError if the store lacks it)."""
        where = self._packs.get(digest)
        return where[2] if where is not None else (self.objects / digest[:2] / digest[2:]).stat().st_size

    def has(self, digest: str) -> bool:
        return self._packs.get(digest) is not None or (self.objects / digest[:2] / digest[2:]).exists()

    def read_object(self, digest: str) -> bytes:
        """An object's bytes, loose or packed (FileNotFoundError if the store lacks it)."""
        path = self.objects / digest[:2] / digest[2:]
        try:
            return path.read_bytes()
        except FileNotFoundError:
            where = self._packs.get(digest)
            if where is None:
                raise
            return read_at(where)

    def manifest(self, snapshot_id: str) -> dict:
        """A stored manifest, parsed; the latest few are kept (an id is the digest of its
        manifest, which never changes), so an engine launching runs of one snapshot reads it
        once: the dict is shared, never to be changed."""
        return self._recent_manifest(snapshot_id)[1]

    def manifest_text(self, snapshot_id: str) -> str:
        """A stored manifest's JSON text, as manifest() parsed it."""
        return self._recent_manifest(snapshot_id)[0]

    def digests(self, snapshot_id: str) -> list[str]:
        """The distinct objects of a stored manifest, sorted (kept with the manifest)."""
        return self._recent_manifest(snapshot_id)[2]

    def _recent_manifest(self, snapshot_id: str) -> tuple[str, dict, list[str]]:
        with self._recent_lock:
            got = self._recent.pop(snapshot_id, None)
        if got is None:
            text = (self.manifests / f"{snapshot_id}.json").read_text()
            data = json.loads(text)
            got = (text, data, sorted({entry[0] for entry in data["files"].values()}))
        with self._recent_lock:
            self._recent[snapshot_id] = got  # the latest used last
            while len(self._recent) > RECENT_MANIFESTS:
                del self._recent[next(iter(self._recent))]
        return got

    def take(self, source: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES,
             max_files: int = DEFAULT_MAX_FILES, extra_files: dict[str, bytes] | None = None,
             exclude: tuple[Path, ...] = (), progress: Progress | None = None) -> Snapshot:
        """Snapshot `source`; over a limit raise SnapshotError before anything is copied."""
        src = Path(source).expanduser().resolve()
        if not src.is_dir():
            raise SnapshotError(f"While attempting to take snapshot of {src}\n"
                                f"the source directory does not exist")
        walked_at = time.time_ns()
        key = (str(src), tuple(sorted(os.path.abspath(p) for p in exclude)))
        watched = self._watches.unchanged(key)
        if watched is not None and watched.stamp != _stamp(self._cache_path(src)):
            watched = None  # the cache file changed elsewhere (a prune, another process's snapshot)
        watch = None
        if watched is not None:  # nothing under src changed since its last walk: no walk
            cache = watched.cache
            found = Scan(watched.files, [], watched.links, len(watched.files))
        else:
            cache = self._load_cache(src)
            watch = self._watches.start(str(src), key[1])
            try:
                found = scan(src, exclude, cache.get("files", {}), watch.add if watch is not None else None)
            except BaseException:
                if watch is not None:
                    watch.close()
                raise
        extra_rels = set(extra_files or ())
        replaced = any(rel in found.known for rel in extra_rels) or any(f.rel in extra_rels for f in found.pending)
        try:
            snap, cache = self._finish(src, found, cache, walked_at, extra_files, max_bytes, max_files, progress)
        except BaseException:
            if watch is not None:
                watch.close()
            raise
        if watch is not None:
            stamp = _stamp(self._cache_path(src))
            if watch.complete and not found.linked and not replaced and stamp is not None:
                folder = {rel: entry for rel, entry in snap.files.items() if rel not in extra_rels}
                self._watches.keep(key, watch, Watched(folder, dict(snap.links), cache, stamp))
            else:
                watch.close()
        return snap

    def _finish(self, src: Path, found: Scan, cache: dict[str, Any], walked_at: int,
                extra_files: dict[str, bytes] | None, max_bytes: int, max_files: int,
                progress: Progress | None) -> tuple[Snapshot, dict[str, Any]]:
        """The snapshot of what the walk found, and the hash cache as it stands after it."""
        cached: dict[str, CacheEntry] = cache.get("files", {})
        manifest, pending, links = found.known, found.pending, found.links
        extra = {rel: (data, hashlib.sha256(data).hexdigest()) for rel, data in (extra_files or {}).items()}
        count = found.files
        if extra:  # an extra file replaces the folder's file of that name
            count -= sum(1 for rel in extra if rel in manifest) + sum(1 for f in pending if f.rel in extra)
            for rel in extra:
                manifest.pop(rel, None)
            pending = [f for f in pending if f.rel not in extra]
        extra_digests = {rel: v[1] for rel, v in extra.items()}
        last = cache.get("last", {})
        if not pending and len(cached) == count and last.get("links") == links \
                and last.get("extra") == extra_digests and "id" in last:  # nothing changed: same id
            for rel, (data, digest) in extra.items():
                manifest[rel] = [digest, len(data), 0o644]
            return Snapshot(last["id"], manifest, links, 0, 0), cache
        new_extra = {rel: v for rel, v in extra.items() if not self.has(v[1])}
        extra_bytes = sum(len(v[0]) for v in new_extra.values())
        at_most = (sum(f.size for f in pending) + extra_bytes, len(pending) + len(new_extra))
        if at_most[0] > max_bytes or at_most[1] > max_files:  # hashed first: only new content counts
            digests = self._hash_all(pending)
            really_new = [f for f in pending if not self.has(digests[f.rel])]
            _check_limits(src, really_new, sum(f.size for f in really_new) + extra_bytes,
                      len(really_new) + len(new_extra), max_bytes, max_files)
        unchanged = list(manifest)
        new_count, new_bytes = self._store_pending(pending, manifest, progress)
        for data, _digest in new_extra.values():
            self.put_bytes(data)
        for rel, (data, digest) in extra.items():
            manifest[rel] = [digest, len(data), 0o644]
        snap = self._save(manifest, links, new_count + len(new_extra), new_bytes + extra_bytes)
        entries = {rel: cached[rel] for rel in unchanged}  # as cached
        entries.update({f.rel: (f.size, self._trusted_mtime(f, walked_at), manifest[f.rel][0], f.mode, f.ctime_ns)
                        for f in pending})
        cache = {"files": entries, "last": {"id": snap.id, "links": links, "extra": extra_digests}}
        self._save_cache(src, cache)
        return snap, cache

    @staticmethod
    def _trusted_mtime(f: WalkedFile, walked_at: int) -> int:
        """The file's mtime as cached; -1 (never a hit) for a file changed just before the walk."""
        window = RACY_COARSE_NS if f.ctime_ns % 1_000_000_000 == 0 else RACY_NS
        return -1 if f.ctime_ns >= walked_at - window else f.mtime_ns

    def _hash_all(self, pending: list[WalkedFile]) -> dict[str, str]:
        """rel -> digest of each file, nothing stored (to tell new content from known)."""
        def one(f: WalkedFile) -> tuple[str, str]:
            h = hashlib.sha256()
            with self._open_source(f) as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            return f.rel, h.hexdigest()
        with ThreadPoolExecutor(max_workers=4) as pool:
            return dict(pool.map(one, pending))

    def _store_pending(self, pending: list[WalkedFile], manifest: dict[str, list],
                       progress: Progress | None) -> tuple[int, int]:
        """Hash and store the files the cache did not vouch for, filling in their manifest
        entries; returns (objects, bytes) that were new to the store. Small files are read in
        threads and written together in one pack; large ones are copied in threads, one object each."""
        total = sum(f.size for f in pending)
        done = [0]
        lock = threading.Lock()

        def step(size: int) -> None:
            if progress is not None:
                with lock:
                    done[0] += size
                    progress(done[0], total)

        small = [f for f in pending if f.size <= PACK_MAX_OBJECT]
        large = [f for f in pending if f.size > PACK_MAX_OBJECT]

        def read_small(f: WalkedFile) -> tuple[WalkedFile, bytes, str]:
            data = self._read_whole(f)
            step(f.size)
            return f, data, hashlib.sha256(data).hexdigest()

        def put_large(f: WalkedFile) -> tuple[WalkedFile, str, bool]:
            digest, new = self._put_file(f)
            step(f.size)
            return f, digest, new

        new_count = new_bytes = 0
        with ThreadPoolExecutor(max_workers=4) as pool:
            copying = pool.map(put_large, large)  # large files in threads (hashlib lets go of
            read = [read_small(f) for f in small]  # the GIL); small ones here, where threads only add
            copied = list(copying)                 # contention for the GIL to each few-kB read
        fresh: dict[str, bytes] = {}
        objects = str(self.objects)
        self._packs.refresh()
        for f, data, digest in read:
            manifest[f.rel] = [digest, len(data), f.mode]
            if digest not in fresh and self._packs.peek(digest) is None \
                    and not os.path.exists(os.path.join(objects, digest[:2], digest[2:])):
                fresh[digest] = data
        for f, digest, new in copied:
            manifest[f.rel] = [digest, f.size, f.mode]
            new_count += new
            new_bytes += f.size if new else 0
        if len(fresh) >= PACK_MIN_OBJECTS:
            self._write_pack(fresh)
        else:
            for digest, data in fresh.items():
                self._put_loose(digest, data)
        new_count += len(fresh)
        new_bytes += sum(len(d) for d in fresh.values())
        if progress is not None and not pending:
            progress(0, 0)
        return new_count, new_bytes

    @staticmethod
    def _open_source(f: WalkedFile) -> BinaryIO:
        try:
            return open(f.path, "rb")  # the caller closes it
        except OSError as exc:
            raise _unreadable(f, exc) from None

    @staticmethod
    def _read_whole(f: WalkedFile) -> bytes:
        """A small file's bytes in two reads (its size as the walk saw it, then the end)."""
        try:
            fd = os.open(f.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _unreadable(f, exc) from None
        try:
            parts = [os.read(fd, f.size + 1)]
            while parts[-1]:  # grown since the walk, or not yet at its end
                parts.append(os.read(fd, 1 << 16))
        finally:
            os.close(fd)
        return b"".join(parts)

    def _put_file(self, f: WalkedFile) -> tuple[str, bool]:
        """Hash while copying into a temp file, then rename into place (one read of the file);
        returns (digest, whether the store lacked it)."""
        h = hashlib.sha256()
        source = self._open_source(f)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.objects, prefix=".in-")
        except BaseException:
            source.close()
            raise
        try:
            with source as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    dst.write(chunk)
            digest = h.hexdigest()
            target = self.objects / digest[:2] / digest[2:]
            if target.exists() or self._packs.get(digest) is not None:
                os.unlink(tmp)
                return digest, False
            target.parent.mkdir(exist_ok=True)
            os.replace(tmp, target)
            return digest, True
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self.has(digest):
            self._put_loose(digest, data)
        return digest

    def _put_loose(self, digest: str, data: bytes) -> None:
        target = self.objects / digest[:2] / digest[2:]
        target.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.objects, prefix=".in-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)

    def _write_pack(self, objects: dict[str, bytes]) -> None:
        write_pack(str(self.objects), objects)
        self._packs.refresh()

    def prune_packs(self, wanted: set[str], before: float, dry_run: bool) -> list[tuple[str, int, set[str]]]:
        """Packs written before `before` none of whose objects is wanted: removed unless
        dry_run; returns (index path, bytes, digests) of each. A pack with one wanted object
        stays whole."""
        doomed = prune_packs(str(self.objects), wanted, before, dry_run)
        for index, _size, _digests in doomed if not dry_run else []:
            self._packs.forget(os.path.basename(index))
        return doomed

    def _save(self, files: dict[str, list], links: dict[str, str], new_count: int,
              new_bytes: int) -> Snapshot:
        body = json.dumps({"files": files, "links": links}, sort_keys=True, separators=(",", ":"))
        snapshot_id = hashlib.sha256(body.encode()).hexdigest()[:32]
        target = self.manifests / f"{snapshot_id}.json"
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self.manifests, prefix=".in-")
            with os.fdopen(fd, "w") as fh:
                fh.write(body)
            os.replace(tmp, target)
        return Snapshot(snapshot_id, files, links, new_count, new_bytes)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """Which version of a file this is (None: there is none)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _check_limits(src: Path, new: list[WalkedFile], new_bytes: int, new_count: int, max_bytes: int,
                  max_files: int) -> None:
    """SnapshotError naming the largest new entries when the new content is over a limit."""
    if new_bytes <= max_bytes and new_count <= max_files:
        return
    if new_bytes > max_bytes:
        head = f"Your total snapshot size exceeds the limit of {max_bytes / 1024 / 1024:.1f} MB"
    else:
        head = f"Your project exceeds the file limit of {max_files}."
    sizes: dict[str, list[int]] = {}
    for f in new:
        top = f.rel.split("/", 1)[0] + ("/" if "/" in f.rel else "")
        agg = sizes.setdefault(top, [0, 0])
        agg[0] += f.size
        agg[1] += 1
    largest = sorted(sizes.items(), key=lambda kv: (-kv[1][0], -kv[1][1]))[:5]
    lines = [f"  {name:<40} {size / 1024 / 1024:10.1f} MB  {count:6d} files"
             for name, (size, count) in largest]
    raise SnapshotError(
        f"While attempting to take snapshot of {src}\n{head}\n"
        f"Largest entries:\n" + "\n".join(lines) + "\n"
        f"Add what the job does not need to {src / '.amlignore'} (or .gitignore), or raise the "
        f"limit with ws.set_snapshot_limits(max_bytes=..., max_files=...).")


def _unreadable(f: WalkedFile, exc: OSError) -> SnapshotError:
    """e.g. a mode-000 file: named, as a folder that cannot be read is."""
    return SnapshotError(f"While attempting to take snapshot: cannot read {f.path}: {exc.strerror or exc}\n"
                         f"Make it readable, or add {f.rel!r} to .amlignore (or .gitignore) if the job "
                         f"does not need it.")


def iter_digests(manifest: dict) -> Iterator[str]:
    seen: set[str] = set()
    for digest, _size, _mode in manifest["files"].values():
        if digest not in seen:
            seen.add(digest)
            yield digest

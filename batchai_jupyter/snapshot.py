"""Snapshots: which files of a source directory a job gets, and the content-addressed store.

A snapshot is a manifest (relative path -> content hash, size, mode) saved under
snapshots/manifests/<id>.json, its content in snapshots/objects/<h[:2]>/<h[2:]>. A (size, mtime)
cache means an unchanged file is neither read nor hashed twice; objects already in the store are
not copied again and do not count against the limits (docs/reference/snapshots.md).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

from .errors import SnapshotError

DEFAULT_MAX_BYTES = 300 * 1024 * 1024
DEFAULT_MAX_FILES = 2000
ALWAYS_EXCLUDED = (".git",)
RECENT_MANIFESTS = 8  # parsed manifests a store keeps (manifest())
Progress = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass(slots=True)
class FileEntry:
    rel: str
    path: str
    size: int
    mtime_ns: int
    mode: int
    digest: str | None = None


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


# -- ignore rules ---------------------------------------------------------------------------
def _folder_spec(folder: str, names: set[str]) -> pathspec.GitIgnoreSpec | None:
    """The ignore file of one folder: .amlignore if present, else .gitignore."""
    for name in (".amlignore", ".gitignore"):
        if name in names:
            try:
                with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as fh:
                    return pathspec.GitIgnoreSpec.from_lines(fh.read().splitlines())
            except OSError:
                return None
    return None


def _ignored(specs: list[tuple[str, pathspec.GitIgnoreSpec]], rel: str, is_dir: bool) -> bool:
    """Deeper ignore files override shallower ones, as git does."""
    verdict = False
    for base, spec in specs:
        sub = rel[len(base) + 1:] if base else rel
        result = spec.check_file(sub + "/" if is_dir else sub)
        if result.include is not None:
            verdict = result.include
    return verdict


def walk(source: Path, exclude: tuple[Path, ...] = ()) -> tuple[list[FileEntry], dict[str, str]]:
    """Files and symlinks of `source` that are not ignored; ignored folders are never entered."""
    files: list[FileEntry] = []
    links: dict[str, str] = {}
    excluded = {str(p) for p in exclude}

    def visit(folder: str, rel: str, specs: list[tuple[str, pathspec.GitIgnoreSpec]]) -> None:
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            raise SnapshotError(f"While attempting to take snapshot of {source}\n"
                                f"cannot read {folder}: {exc}") from None
        spec = _folder_spec(folder, {e.name for e in entries})
        if spec is not None:
            specs = specs + [(rel, spec)]
        prefix = f"{rel}/" if rel else ""
        for entry in entries:
            if entry.name in ALWAYS_EXCLUDED or entry.path in excluded:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            kind = stat.S_IFMT(st.st_mode)
            child_rel = prefix + entry.name
            if specs and _ignored(specs, child_rel, kind == stat.S_IFDIR):
                continue
            if kind == stat.S_IFREG:
                files.append(FileEntry(child_rel, entry.path, st.st_size, st.st_mtime_ns,
                                       stat.S_IMODE(st.st_mode)))
            elif kind == stat.S_IFDIR:
                visit(entry.path, child_rel, specs)
            elif kind == stat.S_IFLNK:
                links[child_rel] = os.readlink(entry.path)

    visit(str(source), "", [])
    return files, links


# -- the store ------------------------------------------------------------------------------
class SnapshotStore:
    """snapshots/ of a workspace: objects, manifests and the (size, mtime) hash cache."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.manifests = self.root / "manifests"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.manifests.mkdir(parents=True, exist_ok=True)
        self._recent: dict[str, tuple[str, dict]] = {}  # snapshot id -> its manifest's text, parsed
        self._recent_lock = threading.Lock()

    def _cache_path(self, src: Path) -> Path:
        return self.root / "cache" / (hashlib.sha1(str(src).encode()).hexdigest() + ".pickle")

    def _load_cache(self, src: Path) -> dict[str, Any]:
        """{"files": path -> (size, mtime_ns, digest, mode), "last": the previous snapshot}."""
        try:
            with open(self._cache_path(src), "rb") as fh:
                return pickle.load(fh)
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            return {}

    def _save_cache(self, src: Path, cache: dict[str, Any]) -> None:
        path = self._cache_path(src)
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".in-")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(cache, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    def object_path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.object_path(digest).exists()

    def manifest(self, snapshot_id: str) -> dict:
        """A stored manifest, parsed; the latest few are kept (an id is the digest of its
        manifest, which never changes), so an engine launching runs of one snapshot reads it
        once: the dict is shared, never to be changed."""
        return self._recent_manifest(snapshot_id)[1]

    def manifest_text(self, snapshot_id: str) -> str:
        """A stored manifest's JSON text, as manifest() parsed it."""
        return self._recent_manifest(snapshot_id)[0]

    def _recent_manifest(self, snapshot_id: str) -> tuple[str, dict]:
        with self._recent_lock:
            got = self._recent.pop(snapshot_id, None)
        if got is None:
            text = (self.manifests / f"{snapshot_id}.json").read_text()
            got = (text, json.loads(text))
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
        files, links = walk(src, exclude)
        cache = self._load_cache(src)
        known = cache.get("files", {})
        pending: list[FileEntry] = []
        for f in files:
            hit = known.get(f.path)
            if hit and hit[0] == f.size and hit[1] == f.mtime_ns and hit[3] == f.mode:
                f.digest = hit[2]  # objects are never removed from the store
            else:
                pending.append(f)
        extra = {rel: (data, hashlib.sha256(data).hexdigest()) for rel, data in (extra_files or {}).items()}
        files = [f for f in files if f.rel not in extra]
        pending = [f for f in pending if f.rel not in extra]
        new_extra = {rel: v for rel, v in extra.items() if not self.has(v[1])}
        new_bytes = sum(f.size for f in pending) + sum(len(v[0]) for v in new_extra.values())
        new_count = len(pending) + len(new_extra)
        self._check_limits(src, files, pending, new_bytes, new_count, max_bytes, max_files)
        self._store_pending(pending, progress)
        for data, _digest in new_extra.values():
            self.put_bytes(data)
        manifest = {f.rel: [f.digest, f.size, f.mode] for f in files}
        extra_digests = {rel: v[1] for rel, v in extra.items()}
        for rel, (data, digest) in extra.items():
            manifest[rel] = [digest, len(data), 0o644]
        last = cache.get("last", {})
        if not pending and len(known) == len(files) and last.get("links") == links \
                and last.get("extra") == extra_digests:  # nothing changed: same manifest, same id
            return Snapshot(last["id"], manifest, links, new_count, new_bytes)
        snap = self._save(manifest, links, new_count, new_bytes)
        self._save_cache(src, {"files": {f.path: (f.size, f.mtime_ns, f.digest, f.mode) for f in files},
                               "last": {"id": snap.id, "links": links, "extra": extra_digests}})
        return snap

    def _check_limits(self, src: Path, files: list[FileEntry], pending: list[FileEntry],
                      new_bytes: int, new_count: int, max_bytes: int, max_files: int) -> None:
        if new_bytes <= max_bytes and new_count <= max_files:
            return
        if new_bytes > max_bytes:
            head = f"Your total snapshot size exceeds the limit of {max_bytes / 1024 / 1024:.1f} MB"
        else:
            head = f"Your project exceeds the file limit of {max_files}."
        sizes: dict[str, list[int]] = {}
        for f in pending:
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

    def _store_pending(self, pending: list[FileEntry], progress: Progress | None) -> None:
        total = sum(f.size for f in pending)
        done = [0]
        lock = threading.Lock()

        def one(f: FileEntry) -> None:
            f.digest = self._put_file(f.path, f.rel)
            if progress is not None:
                with lock:
                    done[0] += f.size
                    progress(done[0], total)

        if len(pending) > 8:
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(one, pending))
        else:
            for f in pending:
                one(f)
        if progress is not None and not pending:
            progress(0, 0)

    def _put_file(self, path: str, rel: str | None = None) -> str:
        """Hash while copying into a temp file, then rename into place (one read of the file)."""
        h = hashlib.sha256()
        try:
            source = open(path, "rb")  # noqa: SIM115 — closed by the with below
        except OSError as exc:  # e.g. a mode-000 file: named, as a folder that cannot be read is
            raise SnapshotError(f"While attempting to take snapshot: cannot read {path}: "
                                f"{exc.strerror or exc}\nMake it readable, or add {rel or path!r} to "
                                f".amlignore (or .gitignore) if the job does not need it.") from None
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
            target = self.object_path(digest)
            if target.exists():
                os.unlink(tmp)
            else:
                target.parent.mkdir(exist_ok=True)
                os.replace(tmp, target)
            return digest
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.object_path(digest)
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.objects, prefix=".in-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        return digest

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


def iter_digests(manifest: dict) -> Iterator[str]:
    seen: set[str] = set()
    for digest, _size, _mode in manifest["files"].values():
        if digest not in seen:
            seen.add(digest)
            yield digest

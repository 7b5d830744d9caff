"""The walk of a source folder for a snapshot: which files and links it holds, with one stat each.

A re-submit of an unchanged folder is this walk and a look-up per file, so it is kept lean: each
folder is listed through an open folder descriptor (a stat names the file relative to it, not by
its whole path), a file is a plain tuple, and its full path is made only when it must be read.
Ignore rules (.amlignore, else .gitignore, per folder, deeper ones overriding) are matched only
where a folder or one above it has such a file.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pathspec

from .errors import SnapshotError

ALWAYS_EXCLUDED = (".git",)
_IGNORE_FILES = frozenset((".amlignore", ".gitignore"))
Specs = list[tuple[str, pathspec.GitIgnoreSpec]]
_S_IFMT, _REG, _DIR, _LNK = stat.S_IFMT, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK


class WalkedFile(NamedTuple):
    """One regular file as the walk saw it (mode: permission bits only)."""

    rel: str
    folder: str      # the folder's path; os.path.join(folder, name) reads the file
    name: str
    size: int
    mtime_ns: int
    ctime_ns: int
    mode: int

    @property
    def path(self) -> str:
        return os.path.join(self.folder, self.name)


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


def _ignored(specs: Specs, rel: str, is_dir: bool) -> bool:
    """Deeper ignore files override shallower ones, as git does."""
    verdict = False
    for base, spec in specs:
        sub = rel[len(base) + 1:] if base else rel
        result = spec.check_file(sub + "/" if is_dir else sub)
        if result.include is not None:
            verdict = result.include
    return verdict


class Scan(NamedTuple):
    """A walk told apart by a (size, mtime, ctime) cache: what it vouches for, what must be read."""

    known: dict[str, list]          # rel -> [digest, size, mode]: unchanged since the cache
    pending: list[WalkedFile]       # files the cache does not vouch for
    links: dict[str, str]
    files: int                      # files in all (known + pending)
    linked: int = 0                 # files with more than one hard link


def walk(source: Path, exclude: tuple[Path, ...] = ()) -> tuple[list[WalkedFile], dict[str, str]]:
    """Files and symlinks of `source` that are not ignored; ignored folders are never entered."""
    got = scan(source, exclude, {})
    return got.pending, got.links


def scan(source: Path, exclude: tuple[Path, ...], cache: dict[str, tuple[int, int, str, int, int]],
         on_folder: Callable[[str], None] | None = None) -> Scan:
    """walk(), each file looked up in `cache` (rel -> (size, mtime_ns, digest, mode, ctime_ns))
    as it is seen: an unchanged file costs its stat and one look-up, nothing else. on_folder is
    told each folder's path before it is listed (snapshot_watch arms its watch there)."""
    known: dict[str, list] = {}
    pending: list[WalkedFile] = []
    links: dict[str, str] = {}
    excluded = {os.path.abspath(p) for p in exclude}
    near_excluded = {os.path.dirname(p) for p in excluded}  # folders holding an excluded path
    append, get = pending.append, cache.get
    linked = 0

    def visit(fd: int, folder: str, rel: str, specs: Specs) -> None:
        nonlocal linked
        if on_folder is not None:
            on_folder(folder)
        try:
            with os.scandir(fd) as it:
                entries = list(it)
        except OSError as exc:
            raise SnapshotError(f"While attempting to take snapshot of {source}\n"
                                f"cannot read {folder}: {exc}") from None
        if any(e.name in _IGNORE_FILES for e in entries):
            spec = _folder_spec(folder, {e.name for e in entries})
            if spec is not None:
                specs = specs + [(rel, spec)]
        prefix = f"{rel}/" if rel else ""
        check_excluded = folder in near_excluded
        for entry in entries:
            name = entry.name
            if name in ALWAYS_EXCLUDED or (check_excluded and os.path.join(folder, name) in excluded):
                continue
            try:
                st = entry.stat(follow_symlinks=False)  # fstatat(fd, name): no path walk
            except OSError:
                continue
            kind = _S_IFMT(st.st_mode)
            child_rel = prefix + name
            if specs and _ignored(specs, child_rel, kind == _DIR):
                continue
            if kind == _REG:
                hit = get(child_rel)
                size, mode = st.st_size, st.st_mode & 0o7777
                if st.st_nlink > 1:
                    linked += 1
                if hit is not None and hit[0] == size and hit[1] == st.st_mtime_ns \
                        and hit[4] == st.st_ctime_ns and hit[3] == mode:
                    known[child_rel] = [hit[2], size, mode]
                else:
                    append(WalkedFile(child_rel, folder, name, size, st.st_mtime_ns, st.st_ctime_ns, mode))
            elif kind == _DIR:
                try:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    raise SnapshotError(f"While attempting to take snapshot of {source}\n"
                                        f"cannot read {os.path.join(folder, name)}: {exc}") from None
                try:
                    visit(sub, os.path.join(folder, name), child_rel, specs)
                finally:
                    os.close(sub)
            elif kind == _LNK:
                links[child_rel] = os.readlink(name, dir_fd=fd)

    top = str(source)
    try:
        fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise SnapshotError(f"While attempting to take snapshot of {source}\ncannot read {top}: {exc}") from None
    try:
        visit(fd, top, "", [])
    finally:
        os.close(fd)
    return Scan(known, pending, links, len(known) + len(pending), linked)

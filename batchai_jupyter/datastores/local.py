"""A folder as a datastore: a workspace folder, or an NFS/SMB share mounted on every node.

Nodes reach it by the same path, so jobs read inputs from it and write outputs into it directly;
no credential is involved.
"""
from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DatastoreError, SpecError
from .base import TMP_MARK, Advance, Datastore, tmp_name

CHUNK = 1 << 20


class LocalDatastore(Datastore):
    kind = "local"

    @classmethod
    def validate_options(cls, name: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        opts = dict(options)
        path = opts.pop("path", None)
        concurrency = opts.pop("max_concurrency", None)
        if opts:
            raise SpecError(min(opts), "is not an option of a local datastore",
                            ["path", "max_concurrency"])
        if not path:
            raise SpecError("path", "is required for kind='local'", "an existing folder")
        folder = Path(path).expanduser()
        if not folder.is_absolute():
            folder = folder.resolve()
        if folder.exists() and not folder.is_dir():
            raise DatastoreError(f"path: {str(folder)!r} exists and is not a folder")
        # A folder missing here may exist on the nodes (an NFS share only they mount): not an error.
        config: dict[str, Any] = {"path": str(folder)}
        if concurrency is not None:
            config["max_concurrency"] = int(concurrency)
        return config, {}

    @property
    def root(self) -> Path:
        return Path(self.config["path"])

    def describe(self) -> str:
        return f"path={self.config['path']!r}"

    def local_path(self, path: str) -> str:
        """Where `path` is on this machine (and on every node that mounts the same share)."""
        return os.path.join(self.config["path"], path) if path else self.config["path"]

    def _iter_files(self, prefix: str) -> Iterator[tuple[str, int]]:
        root = self.root
        if not root.is_dir():
            return  # nothing stored yet (or the share is not mounted on this machine)
        for folder, dirs, files in os.walk(root):
            rel_dir = os.path.relpath(folder, root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
            # prune folders that cannot hold a match: never walk what the prefix excludes
            dirs[:] = sorted(d for d in dirs if _may_match(f"{rel_dir}/{d}/" if rel_dir else f"{d}/", prefix))
            for f in sorted(files):
                if TMP_MARK in f:
                    continue
                rel = f"{rel_dir}/{f}" if rel_dir else f
                if rel.startswith(prefix):
                    try:
                        yield rel, os.path.getsize(os.path.join(folder, f))
                    except FileNotFoundError:
                        continue

    def create_root(self) -> None:
        """register_datastore(..., create_if_not_exists=True): make the folder."""
        self.root.mkdir(parents=True, exist_ok=True)

    def _exists(self, path: str) -> bool:
        return (self.root / path).is_file()

    def _put(self, local: str, path: str, size: int, advance: Advance) -> None:
        dest = self.root / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / tmp_name(path)
        try:
            _copy(local, str(tmp), advance)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()

    def move_tree(self, local_dir: str, path: str) -> int:
        """Each file of ours on the datastore's own filesystem is renamed into place: no byte is
        copied, so a run's gigabytes of outputs land at once. The others are copied as
        push_tree copies: a file on another filesystem, a link, a file of the job's own account
        (the copy is ours and readable by us, as an upload's is)."""
        pairs = self._tree_pairs(local_dir, path)
        me, rest = os.geteuid(), []
        for local, target in pairs:
            st = os.lstat(local)
            dest = self.root / target
            if st.st_uid == me and not stat.S_ISLNK(st.st_mode):
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(local, dest)
                    continue
                except OSError:  # another filesystem (EXDEV) or a folder in the way: copied
                    pass
            rest.append((local, target))
        self._upload_pairs(rest, True, False, path)
        return len(pairs)

    def _get(self, path: str, local: str, size: int, advance: Advance) -> None:
        _copy(str(self.root / path), local, advance)


def _may_match(folder: str, prefix: str) -> bool:
    return folder.startswith(prefix) or prefix.startswith(folder)


def _copy(src: str, dst: str, advance: Advance) -> None:
    """In the kernel (copy_file_range: no bytes through this process, a reflink where the
    filesystem can), CHUNK by CHUNK for the progress bar; read and write where it cannot."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        done = 0
        try:
            while n := os.copy_file_range(fin.fileno(), fout.fileno(), CHUNK):
                done += n
                advance(n)
        except OSError:  # another filesystem that cannot (an old kernel across mounts, FUSE)
            fin.seek(done)
            fout.seek(done)
            while block := fin.read(CHUNK):
                fout.write(block)
                advance(len(block))
    shutil.copymode(src, dst)

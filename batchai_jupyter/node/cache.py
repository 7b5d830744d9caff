"""Disk upkeep on a node: remove ended runs' folders, bound the object cache, say what is used.

    python -m batchai_jupyter.node.cache '<DiskRequest as JSON>'   -> DiskReport as JSON

The engine decides which run folders go (runs that are final and whose files it collected, less
the failed runs a cluster keeps); this module only carries it out on the node, in one call per
node (one per cluster on a shared root). The cache (snapshot objects and trees together) is
bounded by evicting the least recently used entry first, never one an active run uses: a run
folder named in `protect`, or any without status.json (another workspace's run, a launch under
way), protects its snapshot's tree and objects. A pack the engine sent (compute/object_push.py)
is evicted whole, and only when none of its objects is in use. Standard library only.
"""
from __future__ import annotations

import glob
import json
import os
import sys
from typing import TypedDict

from .packs import INDEX_SUFFIX, PACK_SUFFIX, PACKS, index_digests
from .paths import RunPaths, parse_run_key, trees_path
from .tree import close_view, forget_tree_bytes, remove_tree, tree_bytes, tree_name


class DiskRequest(TypedDict, total=False):
    roots: list[str]            # node roots to look at (a glob such as <shared>/nodes/* expands)
    remove: list[str]           # run keys whose folders go, on every root
    close: list[str]            # run keys of ended runs whose folders stay: an overlay left mounted
                                # (its agent was killed) is unmounted, the run's changes kept
    protect: list[str]          # run keys of active runs: never removed, their cache kept
    objects_dir: str | None     # the object cache to bound (None: it is not the node's own)
    shared_dir: str | None      # the cluster's shared folder: a removed run's jobs/<id> goes too
    cache_limit: int | None     # bytes of objects and trees together (None: no bound)


class RootUsage(TypedDict):
    runs: dict[str, int]        # run key -> bytes of its folder
    trees: dict[str, int]       # tree id -> bytes


class DiskReport(TypedDict):
    roots: dict[str, RootUsage]
    objects_bytes: int          # of objects_dir (0 when none was given)
    removed: list[str]          # "<root>/runs/<key>" of each folder removed
    evicted_objects: int
    evicted_trees: int


def folder_bytes(path: str) -> int:
    """Bytes of the regular files below path, links not followed, mounts not entered."""
    total, stack = 0, [path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not os.path.ismount(entry.path):
                        stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


def _roots(patterns: list[str]) -> list[str]:
    out: list[str] = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        out += [p for p in found if os.path.isdir(p) and p not in out]
    return out


def _listdir(path: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(path) if not n.startswith("."))
    except OSError:
        return []


def _in_use(root: str, key: str, protect: set[str]) -> tuple[str, set[str]] | None:
    """(tree id, digests) of the run folder's snapshot when the run may still use them."""
    paths = RunPaths(root, key)
    if key not in protect and os.path.exists(paths.status):
        return None
    try:
        with open(paths.manifest, "rb") as fh:
            data = json.load(fh)
        snap, user = data.get("snapshot") or {}, data.get("job_user")
        if snap.get("listing") and "files" not in snap:  # the files beside the manifest
            with open(paths.snapshot_listing, "rb") as fh:
                snap = {**json.load(fh), "tree": snap.get("tree")}
        files = {str(r): (str(d), int(s), int(m)) for r, (d, s, m) in (snap.get("files") or {}).items()}
        links = {str(k): str(v) for k, v in (snap.get("links") or {}).items()}
        owner = (int(user["uid"]), int(user["gid"])) if user else None
        name = tree_name(files, links, str(snap.get("tree") or ""), owner)
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return "", set()  # no readable manifest yet: keep everything it could name
    return name, {d for d, _s, _m in files.values()}


def upkeep(request: DiskRequest) -> DiskReport:
    """Carry out one request (see the module docstring)."""
    protect = set(request.get("protect") or [])
    remove = [k for k in request.get("remove") or [] if k not in protect and "/" not in k and k]
    report: DiskReport = {"roots": {}, "objects_bytes": 0, "removed": [], "evicted_objects": 0,
                          "evicted_trees": 0}
    roots = _roots(list(request.get("roots") or []))
    for root in roots:
        for key in remove:
            folder = RunPaths(root, key).run_dir
            if os.path.lexists(folder):
                remove_tree(folder)
                report["removed"].append(folder)
    for root in roots:
        for key in request.get("close") or []:
            paths = RunPaths(root, key)
            if key not in protect and "/" not in key and os.path.ismount(paths.wd):
                close_view(paths)
    shared = request.get("shared_dir")
    for run_id in {parse_run_key(k)[0] for k in remove} if shared else ():
        folder = RunPaths.shared_job_dir(str(shared), run_id)
        if os.path.isdir(folder):
            remove_tree(folder)
    used_trees: set[str] = set()
    used_objects: set[str] = set()
    keep_all = False
    for root in roots:
        for key in _listdir(os.path.join(root, "runs")):
            got = _in_use(root, key, protect)
            if got is not None:
                keep_all = keep_all or not got[0]
                used_trees.add(got[0])
                used_objects |= got[1]
    objects_dir = request.get("objects_dir")
    limit = request.get("cache_limit")
    entries: list[tuple[float, int, str, str]] = []  # (last use, bytes, kind, path)
    for root in roots:
        trees = trees_path(root)
        for name in _listdir(trees):
            path = os.path.join(trees, name)
            entries.append((_mtime(path), tree_bytes(path, folder_bytes), "tree", path))
    entries += _pack_entries(str(objects_dir)) if objects_dir else []
    for name in _listdir(objects_dir) if objects_dir else []:
        if len(name) != 2:  # packs/: above, a pack at a time
            continue
        folder = os.path.join(str(objects_dir), name)
        for rest in _listdir(folder):
            path = os.path.join(folder, rest)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, "object", path))
    total = sum(e[1] for e in entries)
    if limit is not None and total > limit and not keep_all:
        for last, size, kind, path in sorted(entries):
            if total <= limit:
                break
            name = os.path.basename(path)
            digest = os.path.basename(os.path.dirname(path)) + name
            if (kind == "tree" and name in used_trees) or (kind == "object" and digest in used_objects):
                continue
            if kind == "pack":
                held = index_digests(_read(path))
                if held is None or held & used_objects:
                    continue  # an object of it in use (or an index being written): kept whole
                _unlink(path)  # the index first: a pack is never seen half gone
                _unlink(path[:-len(INDEX_SUFFIX)] + PACK_SUFFIX)
            elif kind == "tree":
                remove_tree(path)
                forget_tree_bytes(path)
            else:
                _unlink(path)
            report["evicted_trees" if kind == "tree" else "evicted_objects"] += 1
            total -= size
            entries.remove((last, size, kind, path))
    report["objects_bytes"] = sum(e[1] for e in entries if e[2] in ("object", "pack"))
    for root in roots:
        runs_dir = os.path.join(root, "runs")
        report["roots"][root] = {
            "runs": {key: folder_bytes(os.path.join(runs_dir, key)) for key in _listdir(runs_dir)},
            "trees": {os.path.basename(e[3]): e[1] for e in entries
                      if e[2] == "tree" and os.path.dirname(e[3]) == trees_path(root)}}
    return report


def _pack_entries(objects_dir: str) -> list[tuple[float, int, str, str]]:
    """(last use, bytes, "pack", index path) of each pack of a node cache; a run that reads a
    pack touches the pack (node/tree.py), so its time is the pack's."""
    folder = os.path.join(objects_dir, PACKS)
    out = []
    for name in _listdir(folder):
        if not name.endswith(INDEX_SUFFIX):
            continue
        index = os.path.join(folder, name)
        pack = index[:-len(INDEX_SUFFIX)] + PACK_SUFFIX
        try:
            st = os.lstat(pack)
            out.append((st.st_mtime, st.st_size + os.lstat(index).st_size, "pack", index))
        except OSError:
            continue
    return out


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def main(argv: list[str]) -> int:
    request = json.loads(argv[1] if len(argv) > 1 else sys.stdin.read())
    print(json.dumps(upkeep(request)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Snapshot trees on a node: one read-only tree per snapshot, and each run's writable view of it.

The tree (`<node_root>/trees/<name>/`) is built once from the node's object cache, into a
temporary folder renamed into place, so two agents building it at once leave one tree. Its name is
the snapshot id the engine carries in the manifest (a digest of the same paths, contents, modes
and links, taken once at submit), so a later run of the snapshot finds its tree without reading
or hashing its file list. Nothing ever writes into a tree: a run works in a view of its own, made
the cheapest way the node allows —

    overlay   an overlayfs mount with the tree as its lower layer (root, a kernel with overlay,
              a node root that is not on the cluster's shared root: the engine must see the mount);
              the run's changes land in runs/<key>/view/upper
    reflink   each file cloned from the tree (FICLONE: btrfs, XFS, ...), shared blocks until written
    copy      each file copied from the tree (copy_file_range)

so a second run of a snapshot copies nothing on overlay and reflink nodes. Never hard links: a
job (often root) would write through them into the tree. BATCHAI_NODE_VIEW=overlay|reflink|copy
asks for one way (a way the node cannot do falls back to the next).

A tree's files carry no write bits. Where the job runs as another account than the agent (a
root engine's local clusters, node/job_user.py), its overlay must show the job its files as its
own and writable, as a copy would: that account gets a tree of its own (`<name>-<uid>-<gid>`),
owned by it with the snapshot's modes, and `trees/` is the agent's alone (0700), so the job
reaches the tree only through its overlay, whose writes land in the run's upper layer.

When the job is over, `close_view` unmounts an overlay and leaves the run's changes (its
outputs, logs and any file it wrote) as the run's wd: what the engine collects is there, and a
kept run folder holds what the run changed, not another copy of the snapshot.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Mapping

from .packs import PackIndex, PackReader
from .paths import RunPaths, objects_path, trees_path

VIEW_MODES = ("overlay", "reflink", "copy")
FICLONE = 0x40049409  # ioctl: clone a whole file (linux/fs.h)
MNT_DETACH = 2
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH

FileEntry = tuple[str, int, int]  # digest, size, mode
Owner = tuple[int, int]  # uid, gid of the account a tree is built for
_CARRIED = re.compile(r"^[0-9a-f]{16,64}$")


def tree_id(files: Mapping[str, FileEntry], links: Mapping[str, str]) -> str:
    """The name of a snapshot's tree: a digest of what it holds (paths, contents, modes, links)."""
    body = json.dumps({"f": sorted((rel, d, m) for rel, (d, _s, m) in files.items()),
                       "l": sorted(links.items())}, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def tree_name(files: Mapping[str, FileEntry], links: Mapping[str, str], carried: str = "",
              owner: Owner | None = None) -> str:
    """The folder name of a snapshot's tree: the id the manifest carries (hashed here only when
    it carries none, or one that is not a hex digest), suffixed for an account's own tree."""
    base = carried if _CARRIED.match(carried) else tree_id(files, links)
    return base if owner is None else f"{base}-{owner[0]}-{owner[1]}"


# -- copies ----------------------------------------------------------------------------------------
def copy_file(src: str, dst: str, mode: int) -> None:
    """A real copy (copy_file_range, a reflink where the kernel can), never a hard link."""
    with open(src, "rb") as fin:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            size, done = os.fstat(fin.fileno()).st_size, 0
            try:
                while done < size:
                    n = os.copy_file_range(fin.fileno(), fd, size - done)
                    if n == 0:
                        break
                    done += n
            except OSError:
                fin.seek(done)
                os.lseek(fd, done, os.SEEK_SET)
                with os.fdopen(os.dup(fd), "wb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
        finally:
            os.close(fd)
    os.chmod(dst, mode)


def write_file(dst: str, data: bytes, mode: int) -> None:
    """A new file holding data (a packed object), made as copy_file makes its copies."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def clone_file(src: str, dst: str, mode: int) -> None:
    """dst shares src's blocks until either is written (FICLONE); OSError where the fs cannot."""
    with open(src, "rb") as fin:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.ioctl(fd, FICLONE, fin.fileno())
        except OSError:
            os.close(fd)
            os.unlink(dst)
            raise
        os.close(fd)
    os.chmod(dst, mode)


# -- the tree --------------------------------------------------------------------------------------
def build_tree(node_root: str, objects_dir: str, files: Mapping[str, FileEntry],
               links: Mapping[str, str], name: str | None = None, owner: Owner | None = None) -> str:
    """The snapshot's tree on this node, built from the object cache unless it is there.

    Parameters
    ----------
    name: the tree's folder name (tree_name); None: computed from files and links.
    owner: (uid, gid) of the account the tree is for (see the module docstring); None: the
        agent's own, without write bits.
    """
    trees = trees_path(node_root)
    tree = os.path.join(trees, name or tree_name(files, links, owner=owner))
    if os.path.isdir(tree):  # a later run: nothing per file
        touch(tree)
        return tree
    os.makedirs(trees, exist_ok=True)
    if owner is not None:  # the job's account reaches its tree through its overlay only
        os.chmod(trees, 0o700)
    tmp = os.path.join(trees, f".build-{os.path.basename(tree)}-{os.getpid()}-{secrets.token_hex(3)}")
    packed = PackIndex(objects_dir)
    packed.refresh()
    reader = PackReader()
    made: set[str] = set()
    try:
        for rel, (digest, _size, mode) in files.items():
            dst = os.path.join(tmp, rel)
            parent = os.path.dirname(dst)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            wanted = stat.S_IMODE(mode) if owner is not None else stat.S_IMODE(mode) & ~_WRITE_BITS
            where = packed.peek(digest)
            if where is not None:
                write_file(dst, reader.read(where), wanted)  # from the pack: one open pack, no copy
            else:
                src = objects_path(objects_dir, digest)
                copy_file(src, dst, wanted)
                touch(src)  # the object cache evicts the least recently used first
        for pack in reader.packs():
            touch(pack)
        for rel, target in links.items():
            dst = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.symlink(target, dst)
        os.makedirs(tmp, exist_ok=True)
        if owner is not None:
            _chown_all(tmp, owner)
        try:
            os.rename(tmp, tree)
        except OSError as exc:  # another agent built it meanwhile: use that one
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not os.path.isdir(tree):
                raise
        else:
            note_tree_bytes(tree, sum(size for _digest, size, _mode in files.values()))
    finally:
        reader.close()
        if os.path.lexists(tmp):
            remove_tree(tmp)
    return tree


def _bytes_note(tree: str) -> str:
    """<node_root>/.tree-bytes/<name>: beside trees/, which holds trees only."""
    return os.path.join(os.path.dirname(os.path.dirname(tree)), ".tree-bytes", os.path.basename(tree))


def note_tree_bytes(tree: str, total: int) -> None:
    """Keep the tree's byte count beside it: a tree never changes, so node upkeep reads the
    count instead of walking thousands of files after every run."""
    try:
        os.makedirs(os.path.dirname(_bytes_note(tree)), exist_ok=True)
        tmp = f"{_bytes_note(tree)}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(str(total))
        os.replace(tmp, _bytes_note(tree))
    except OSError:
        pass


def tree_bytes(tree: str, walk: Callable[[str], int]) -> int:
    """The tree's bytes as noted when it was built, else walk(tree) (then noted)."""
    try:
        with open(_bytes_note(tree), encoding="utf-8") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        total = walk(tree)
        note_tree_bytes(tree, total)
        return total


def forget_tree_bytes(tree: str) -> None:
    try:
        os.unlink(_bytes_note(tree))
    except OSError:
        pass


def _chown_all(folder: str, owner: Owner) -> None:
    """folder and everything below it become the account's (links themselves, not followed)."""
    os.lchown(folder, *owner)
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            os.lchown(os.path.join(root, name), *owner)


def touch(path: str) -> None:
    try:
        os.utime(path, follow_symlinks=False)
    except OSError:
        pass


def remove_tree(path: str) -> None:
    """rm -rf that unmounts what is mounted below first and gets past read-only folders."""
    unmount_below(path)

    def retry(func: Callable[[str], object], target: str, _exc: object) -> None:
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, onerror=retry)
    elif os.path.lexists(path):
        os.unlink(path)


# -- mounts ----------------------------------------------------------------------------------------
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def mount_overlay(lower: str, upper: str, work: str, target: str) -> None:
    """Mount an overlayfs at target; OSError when this node cannot.

    Volatile where the kernel has it (5.10+): unmounting a plain overlay syncs its whole upper
    filesystem, the node's disk, so a run writing 1 GiB waited for all of it (and for what every
    other job had written) to reach the disk before it could end. A volatile view skips the
    job's syncs too; a node that crashes mid-run loses that attempt's folder anyway."""
    if any(c in p for p in (lower, upper, work) for c in ",:\\"):
        raise OSError(errno.EINVAL, "a path an overlay option cannot name")
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    for extra in (",volatile", ""):  # an older kernel refuses the option: a plain mount
        if _libc().mount(b"overlay", target.encode(), b"overlay", 0, (options + extra).encode()) == 0:
            return
        code = ctypes.get_errno()
        if code != errno.EINVAL:
            break
    raise OSError(code, os.strerror(code))


def unmount(target: str) -> bool:
    """Detach the mount at target (lazily, should a process still use it); True if one was there."""
    if not os.path.ismount(target):
        return False
    return _libc().umount2(target.encode(), MNT_DETACH) == 0


def unmount_below(path: str) -> None:
    """Detach every mount at or below path, deepest first (this process's mount namespace)."""
    prefix = os.path.abspath(path).rstrip("/") + "/"
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            points = [line.split()[4] for line in fh if len(line.split()) > 4]
    except OSError:
        return
    points = [p.replace("\\040", " ") for p in points]
    for point in sorted((p for p in points if (p + "/").startswith(prefix)), key=len, reverse=True):
        _libc().umount2(point.encode(), MNT_DETACH)


# -- a run's view ----------------------------------------------------------------------------------
def wanted_modes(paths: RunPaths, shared_dir: str | None, env: Mapping[str, str]) -> list[str]:
    """The ways to try, best first: BATCHAI_NODE_VIEW first, then overlay, reflink, copy."""
    asked = env.get("BATCHAI_NODE_VIEW", "")
    modes = [m for m in VIEW_MODES if VIEW_MODES.index(m) >= VIEW_MODES.index(asked)] \
        if asked in VIEW_MODES else list(VIEW_MODES)
    on_shared = bool(shared_dir) and (paths.node_root.rstrip("/") + "/").startswith(
        str(shared_dir).rstrip("/") + "/")
    if os.geteuid() != 0 or on_shared:
        modes = [m for m in modes if m != "overlay"]
    return modes


def open_view(paths: RunPaths, tree: str, files: Mapping[str, FileEntry], links: Mapping[str, str],
              modes: list[str], owner: Owner | None = None) -> str:
    """Make paths.wd the run's writable view of tree; returns the way it was made.

    owner: the job's account, when it is not the agent's: an overlay's top folder is its (the
    rest of the view the agent hands over, node/job_user.py)."""
    os.makedirs(paths.wd, exist_ok=True)
    made = "copy"
    for mode in modes:
        try:
            if mode == "overlay":
                upper, work = os.path.join(paths.view, "upper"), os.path.join(paths.view, "work")
                os.makedirs(upper, exist_ok=True)
                os.makedirs(work, exist_ok=True)
                if owner is not None:  # the merged top folder shows its upper folder's owner
                    os.chown(upper, *owner)
                mount_overlay(tree, upper, work, paths.wd)
            else:
                _fill(paths.wd, tree, files, links, clone_file if mode == "reflink" else copy_file)
            made = mode
            break
        except OSError:
            if mode == "copy":
                raise
    with open(paths.view_mode, "w", encoding="utf-8") as fh:
        fh.write(made)
    for folder in (paths.outputs, paths.logs):
        os.makedirs(folder, exist_ok=True)
    return made


def _fill(wd: str, tree: str, files: Mapping[str, FileEntry], links: Mapping[str, str],
          put: Callable[[str, str, int], None]) -> None:
    for rel, (_digest, _size, mode) in files.items():
        dst = os.path.join(wd, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.lexists(dst):
            os.unlink(dst)
        put(os.path.join(tree, rel), dst, stat.S_IMODE(mode))
    for rel, target in links.items():
        dst = os.path.join(wd, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.lexists(dst):
            os.symlink(target, dst)


def view_mode(paths: RunPaths) -> str | None:
    try:
        with open(paths.view_mode, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def close_view(paths: RunPaths) -> None:
    """The job is over: an overlay is unmounted and the run's changes become its wd."""
    if view_mode(paths) != "overlay":
        return
    upper = os.path.join(paths.view, "upper")
    deadline = time.time() + 5
    while os.path.ismount(paths.wd) and time.time() < deadline:
        unmount(paths.wd)
    if os.path.ismount(paths.wd) or not os.path.isdir(upper):
        return
    shutil.rmtree(paths.wd, ignore_errors=True)  # the empty folders under the mount point
    os.rename(upper, paths.wd)
    remove_tree(paths.view)
    with open(paths.view_mode, "w", encoding="utf-8") as fh:
        fh.write("overlay-closed")

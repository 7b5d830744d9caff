"""Snapshot speed: first snapshot vs zipping the tree; unchanged re-submit vs a stat walk.

    python bench/bench_snapshot.py [--quick]
Targets: first snapshot < zip (ratio < 1); unchanged re-submit <= 2x the stat walk.
Then the same on 2,000 small files only (1-8 kB each, as a source tree; quick: 200), where the
targets are first snapshot <= 1x zip (moonshot <= 2x `cat` of the files) and unchanged
re-submit <= 1.5x the stat walk.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

from batchai_jupyter.snapshot import SnapshotStore
from bench._common import median, parse_args, report


def make_tree(root: Path, files: int, total_bytes: int) -> None:
    """Mostly small source-like files plus a few large binaries, like a real project."""
    big = 10
    small_size = max(1, (total_bytes // 10) // (files - big))
    big_size = (total_bytes - small_size * (files - big)) // big
    for i in range(files - big):
        folder = root / f"pkg{i % 40}"
        folder.mkdir(parents=True, exist_ok=True)
        body = f"# module {i}\n".encode() + os.urandom(small_size // 2).hex().encode()
        (folder / f"mod{i}.py").write_bytes(body[:small_size])
    for i in range(big):
        (root / "data").mkdir(exist_ok=True)
        (root / "data" / f"blob{i}.bin").write_bytes(os.urandom(big_size))


def make_small_tree(root: Path, files: int) -> None:
    """Only small source-like files, 1-8 kB each, in 40 folders."""
    for i in range(files):
        folder = root / f"pkg{i % 40}"
        folder.mkdir(parents=True, exist_ok=True)
        size = 1024 + (i * 7919) % (7 * 1024)
        (folder / f"mod{i}.py").write_bytes(os.urandom(size // 2 + 1).hex().encode()[:size])


def cat_tree(root: Path) -> None:
    files = [os.path.join(folder, name) for folder, _dirs, names in os.walk(root) for name in names]
    subprocess.run(["cat", *files], check=True, stdout=subprocess.DEVNULL)


def small_files(tmp: Path, files: int) -> None:
    root = tmp / "small"
    make_small_tree(root, files)
    t = time.perf_counter()
    zip_tree(root, tmp / "small.zip")
    zip_time = time.perf_counter() - t
    t = time.perf_counter()
    cat_tree(root)
    cat_time = time.perf_counter() - t
    store = SnapshotStore(tmp / "small-store")
    t, cpu = time.perf_counter(), time.process_time()
    first = store.take(root, max_bytes=64 << 20, max_files=files * 2)
    first_time, first_cpu = time.perf_counter() - t, time.process_time() - cpu
    print(f"first snapshot, {files} small files: {first_cpu * 1000:.1f} ms of client CPU "
          f"(a load on the machine moves wall clock more than CPU)")
    report(f"first snapshot, {files} small files", first_time, "zip of the same files", zip_time, "<= 1")
    report(f"first snapshot, {files} small files", first_time, "cat of the same files", cat_time,
           "moonshot <= 2")
    resubmits, walks = resubmit_times(store, root, first.id, files)
    report(f"unchanged re-submit from the same process (watched), {files} small files", median(resubmits),
           "stat of every file", median(walks), "<= 1.5")
    os.environ["BATCHAI_SNAPSHOT_WATCH"] = "0"  # what a new process (the CLI) does: the walk
    try:
        walked = SnapshotStore(tmp / "small-store")
        walked.take(root, max_bytes=64 << 20, max_files=files * 2)
        resubmits, walks = resubmit_times(walked, root, first.id, files)
    finally:
        del os.environ["BATCHAI_SNAPSHOT_WATCH"]
    report(f"unchanged re-submit with a walk (a new process), {files} small files", median(resubmits),
           "stat of every file", median(walks), "<= 1.5")


def resubmit_times(store: SnapshotStore, root: Path, snapshot_id: str, files: int) -> tuple[list[float], list[float]]:
    """Seven unchanged re-snapshots, each next to a stat walk of the same tree (interleaved, so
    a load that comes and goes hits both alike)."""
    resubmits, walks = [], []
    for _ in range(7):
        t = time.perf_counter()
        again = store.take(root, max_bytes=64 << 20, max_files=files * 2)
        resubmits.append(time.perf_counter() - t)
        assert again.id == snapshot_id and again.new_files == 0
        t = time.perf_counter()
        stat_walk(root)
        walks.append(time.perf_counter() - t)
    return resubmits, walks


def zip_tree(root: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                zf.write(path, path.relative_to(root))


def stat_walk(root: Path) -> int:
    count = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(folder, name))
            count += 1
    return count


def main() -> None:
    args = parse_args(__doc__)
    files, size = (200, 30 << 20) if args.quick else (2000, 300 << 20)
    with tempfile.TemporaryDirectory(prefix="bench-snap-") as tmp:
        root = Path(tmp) / "src"
        make_tree(root, files, size)
        print(f"tree: {files} files, {size >> 20} MB")
        t = time.perf_counter()
        zip_tree(root, Path(tmp) / "tree.zip")
        zip_time = time.perf_counter() - t
        store = SnapshotStore(Path(tmp) / "store")
        t = time.perf_counter()
        first = store.take(root, max_bytes=size * 2, max_files=files * 2)
        first_time = time.perf_counter() - t
        assert first.new_files == files
        report("first snapshot", first_time, "zip of the same tree", zip_time, "< 1")
        resubmits, walks = [], []
        for _ in range(7):
            t = time.perf_counter()
            again = store.take(root, max_bytes=size * 2, max_files=files * 2)
            resubmits.append(time.perf_counter() - t)
            assert again.id == first.id and again.new_files == 0
            t = time.perf_counter()
            stat_walk(root)
            walks.append(time.perf_counter() - t)
        report("unchanged re-submit (median of 7)", median(resubmits), "stat of every file",
               median(walks), "<= 2")
        small_files(Path(tmp), 200 if args.quick else 2000)


if __name__ == "__main__":
    main()

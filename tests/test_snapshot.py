"""Snapshot rules (docs/reference/snapshots.md): ignore files, pruning, limits, content addressing, the cache."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from batchai_jupyter import SnapshotError
from batchai_jupyter.snapshot import SnapshotStore


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    return SnapshotStore(tmp_path / "store")


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


class _Audit:
    """Records which folders are scanned and which files are opened (a real CPython hook)."""

    def __init__(self) -> None:
        self.active = False
        self.scanned: list[str] = []
        self.opened: list[str] = []
        sys.addaudithook(self)

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active:
            return
        if event == "os.scandir":
            self.scanned.append(str(args[0]))
        elif event == "open" and isinstance(args[0], str):
            self.opened.append(args[0])


AUDIT = _Audit()


def test_gitignore_nested_and_negation(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {
        ".gitignore": "*.log\ndata/\n",
        "train.py": "x", "debug.log": "x", "data/big.bin": "x",
        "pkg/.gitignore": "*.tmp\n!keep.log\n", "pkg/a.py": "x", "pkg/b.tmp": "x", "pkg/keep.log": "x",
        ".git/config": "x",
    })
    snap = store.take(src)
    assert set(snap.files) == {".gitignore", "train.py", "pkg/.gitignore", "pkg/a.py", "pkg/keep.log"}


def test_amlignore_replaces_gitignore(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {".gitignore": "*.py\n", ".amlignore": "*.csv\n",
                                   "train.py": "x", "data.csv": "x"})
    snap = store.take(src)
    assert "train.py" in snap.files and "data.csv" not in snap.files


def test_ignored_folders_are_never_walked(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {".amlignore": "venv/\n", "train.py": "x",
                                   **{f"venv/lib/site/m{i}.py": "x" for i in range(5)}})
    AUDIT.active, AUDIT.scanned = True, []
    try:
        store.take(src)
    finally:
        AUDIT.active = False
    assert not [p for p in AUDIT.scanned + AUDIT.opened if "venv" in p], (AUDIT.scanned, AUDIT.opened)


def test_symlinks_are_kept_as_links(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {"real.txt": "content"})
    os.symlink("real.txt", src / "link.txt")
    os.symlink("/does/not/exist", src / "dangling")
    snap = store.take(src)
    assert snap.links == {"link.txt": "real.txt", "dangling": "/does/not/exist"}


def test_size_limit_lists_largest_entries_and_copies_nothing(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {"train.py": "x", "checkpoints/a.pt": b"0" * 3000,
                                   "checkpoints/b.pt": b"0" * 3000, "data.bin": b"1" * 2000})
    with pytest.raises(SnapshotError) as err:
        store.take(src, max_bytes=4096)
    text = str(err.value)
    assert f"While attempting to take snapshot of {src}" in text
    assert "Your total snapshot size exceeds the limit of 0.0 MB" in text
    assert text.index("checkpoints/") < text.index("data.bin") < text.index("train.py")
    assert ".amlignore" in text and "set_snapshot_limits" in text
    assert not any(p.is_file() for p in store.objects.rglob("*"))


def test_file_limit_counts_only_new_files(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {f"f{i}.py": f"{i}" for i in range(5)})
    store.take(src, max_files=5)
    (src / "new.py").write_text("new")
    snap = store.take(src, max_files=5)  # 6 files, but only one is new
    assert snap.new_files == 1
    _tree(src, {f"g{i}.py": f"g{i}" for i in range(6)})
    with pytest.raises(SnapshotError, match="Your project exceeds the file limit of 5."):
        store.take(src, max_files=5)


def test_unchanged_file_is_not_read_twice(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {"train.py": "print(1)", "data.txt": "d" * 1000})
    time.sleep(0.05)  # older than the racy window: a file changed just before the walk is read again
    first = store.take(src)
    AUDIT.active, AUDIT.opened = True, []
    try:
        second = store.take(src)
    finally:
        AUDIT.active = False
    assert first.id == second.id and second.new_files == 0
    assert not [p for p in AUDIT.opened if p.startswith(str(src)) and not os.path.isdir(p)]
    (src / "train.py").write_text("print(2)")
    third = store.take(src)
    assert third.id != first.id and third.new_files == 1


def test_content_addressed_dedup(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {"a.txt": "same", "b/c.txt": "same"})
    snap = store.take(src)
    assert snap.files["a.txt"][0] == snap.files["b/c.txt"][0]
    assert len([p for p in store.objects.rglob("*") if p.is_file()]) == 1


def test_extra_files_join_the_snapshot(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {"util.py": "x"})
    snap = store.take(src, extra_files={"main.py": b"print('cell')"})
    digest = snap.files["main.py"][0]
    assert store.object_path(digest).read_bytes() == b"print('cell')"


def test_missing_source(tmp_path: Path, store: SnapshotStore) -> None:
    with pytest.raises(SnapshotError, match="does not exist"):
        store.take(tmp_path / "nope")


def test_same_size_edit_is_seen_even_with_its_mtime_put_back(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {"train.py": "print(1)"})
    time.sleep(0.05)
    first = store.take(src)
    st = os.stat(src / "train.py")
    (src / "train.py").write_text("print(2)")  # same size
    os.utime(src / "train.py", ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    second = store.take(src)
    assert second.id != first.id and second.new_files == 1
    assert store.read_object(second.files["train.py"][0]) == b"print(2)"


def test_edit_right_after_a_snapshot_is_seen(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {"train.py": "print(1)"})
    first = store.take(src)  # within the clock step of the write: not trusted next time
    (src / "train.py").write_text("print(2)")
    second = store.take(src)
    assert second.id != first.id
    assert store.read_object(second.files["train.py"][0]) == b"print(2)"


def test_new_and_deleted_files_change_the_snapshot(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {f"pkg/m{i}.py": f"m{i}" for i in range(20)})
    time.sleep(0.05)
    first = store.take(src)
    (src / "pkg" / "new.py").write_text("new")
    second = store.take(src)
    assert second.id != first.id and set(second.files) == set(first.files) | {"pkg/new.py"}
    (src / "pkg" / "m3.py").unlink()
    third = store.take(src)
    assert "pkg/m3.py" not in third.files and third.id not in (first.id, second.id)
    (src / ".amlignore").write_text("pkg/m1*\n")
    fourth = store.take(src)
    assert not [r for r in fourth.files if r.startswith("pkg/m1")] and "pkg/m2.py" in fourth.files


def test_small_files_are_packed_and_read_back(tmp_path: Path, store: SnapshotStore) -> None:
    contents = {f"pkg{i % 4}/m{i}.py": os.urandom(1000 + i) for i in range(50)}
    src = _tree(tmp_path / "src", {**contents, "big.bin": os.urandom(300_000)})
    snap = store.take(src)
    loose = [p for p in store.objects.glob("??/*")]
    packs = sorted(p.suffix for p in (store.objects / "packs").iterdir())
    assert len(loose) == 1 and packs == [".idx", ".pack"]  # the big file alone is loose
    assert snap.new_files == 51
    fresh = SnapshotStore(store.root)  # another process's view of the same store
    for rel, data in contents.items():
        digest = snap.files[rel][0]
        assert fresh.has(digest) and fresh.read_object(digest) == data
        assert fresh.object_path(digest).read_bytes() == data  # written out loose when asked
    again = SnapshotStore(store.root).take(src)
    assert again.id == snap.id and again.new_files == 0


def test_a_lost_cache_counts_only_content_the_store_lacks(tmp_path: Path, store: SnapshotStore) -> None:
    src = _tree(tmp_path / "src", {f"m{i}.py": f"m{i}" for i in range(30)})
    first = store.take(src)
    for cache in (store.root / "cache").iterdir():
        cache.unlink()  # e.g. pruned: every file is read again, none is new
    again = store.take(src, max_files=5)
    assert again.id == first.id and again.new_files == 0
    (src / "new.py").write_text("new")
    for cache in (store.root / "cache").iterdir():
        cache.unlink()
    assert store.take(src, max_files=1).new_files == 1

"""A re-snapshot of a watched, unchanged folder skips its walk; every kind of change a job's
sources can see still gives a new snapshot (snapshot_watch.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import batchai_jupyter.snapshot as snapshot_module
from batchai_jupyter.snapshot import SnapshotStore
from batchai_jupyter.snapshot_watch import LOCAL_FILESYSTEMS, filesystem_type


@pytest.fixture
def src(tmp_path: Path) -> Path:
    if filesystem_type(str(tmp_path)) not in LOCAL_FILESYSTEMS:
        pytest.skip(reason=f"{tmp_path} is not on a local filesystem inotify vouches for")
    root = tmp_path / "project"
    (root / "pkg" / "deep").mkdir(parents=True)
    (root / "train.py").write_text("print('train')\n")
    for i in range(20):
        (root / "pkg" / f"m{i}.py").write_text(f"VALUE = {i}\n")
    (root / "pkg" / "deep" / "conf.yaml").write_text("lr: 0.1\n")
    return root


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders walked, one entry per walk."""
    seen: list[Path] = []
    real = snapshot_module.scan

    def counting(source: Path, *args: object, **kwargs: object) -> object:
        seen.append(source)
        return real(source, *args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(snapshot_module, "scan", counting)
    return seen


def test_an_unchanged_folder_is_not_walked_again_and_keeps_its_id(src: Path, tmp_path: Path,
                                                                   walks: list[Path]) -> None:
    store = SnapshotStore(tmp_path / "store")
    first = store.take(src)
    again = [store.take(src) for _ in range(3)]
    assert {s.id for s in again} == {first.id}
    assert again[-1].files == first.files
    assert len(walks) == 1


@pytest.mark.parametrize("change", ["edit", "same_size_edit_mtime_restored", "new_file_in_new_folder",
                                    "delete", "chmod", "rename_across_folders", "symlink"])
def test_each_change_gives_a_new_snapshot_with_the_change_in_it(src: Path, tmp_path: Path, change: str) -> None:
    store = SnapshotStore(tmp_path / "store")
    before = store.take(src)
    target = src / "pkg" / "deep" / "conf.yaml"
    if change == "edit":
        target.write_text("lr: 0.2 and more\n")
    elif change == "same_size_edit_mtime_restored":
        st = target.stat()
        target.write_text("lr: 0.9\n")
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif change == "new_file_in_new_folder":
        (src / "pkg" / "deep" / "more").mkdir()
        (src / "pkg" / "deep" / "more" / "x.py").write_text("X = 1\n")
    elif change == "delete":
        target.unlink()
    elif change == "chmod":
        target.chmod(0o700)
    elif change == "rename_across_folders":
        target.rename(src / "conf.yaml")
    elif change == "symlink":
        (src / "link.yaml").symlink_to("pkg/deep/conf.yaml")
    after = store.take(src)
    assert after.id != before.id
    fresh = SnapshotStore(tmp_path / "fresh").take(src)  # what a walk from nothing finds
    assert (after.files, after.links) == (fresh.files, fresh.links)


def test_a_folder_made_after_the_watch_is_watched_from_its_next_walk(src: Path, tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "store")
    store.take(src)
    (src / "later").mkdir()
    (src / "later" / "a.py").write_text("A = 1\n")
    with_folder = store.take(src)
    (src / "later" / "a.py").write_text("A = 2\n")
    edited = store.take(src)
    assert edited.id != with_folder.id
    assert store.read_object(edited.files["later/a.py"][0]) == b"A = 2\n"


def test_a_file_with_a_second_hard_link_is_walked_every_time(src: Path, tmp_path: Path,
                                                             walks: list[Path]) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.link(src / "train.py", outside / "train.py")
    store = SnapshotStore(tmp_path / "store")
    first = store.take(src)
    (outside / "train.py").write_text("print('changed through the other link')\n")  # no event in src
    second = store.take(src)
    assert second.id != first.id
    assert len(walks) == 2


def test_the_workspace_inside_the_source_does_not_end_the_watch(src: Path, walks: list[Path]) -> None:
    ws = src / ".batchai"
    store = SnapshotStore(ws / "snapshots")
    first = store.take(src, exclude=(ws,))
    (ws / "runs").mkdir()
    (ws / "runs" / "log.txt").write_text("a run's files\n")
    second = store.take(src, exclude=(ws,))
    assert second.id == first.id and ".batchai/runs/log.txt" not in second.files
    assert len(walks) == 1


def test_a_change_made_by_a_forked_child_is_seen_by_the_parent(src: Path, tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path / "store")
    first = store.take(src)
    pid = os.fork()
    if pid == 0:  # the child edits and snapshots with the inherited store: it must not eat the event
        try:
            (src / "train.py").write_text("print('from the child')\n")
            store.take(src)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert store.take(src).id != first.id


def test_watching_turned_off_walks_every_time(src: Path, tmp_path: Path, walks: list[Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_SNAPSHOT_WATCH", "0")
    store = SnapshotStore(tmp_path / "store")
    store.take(src)
    store.take(src)
    assert len(walks) == 2

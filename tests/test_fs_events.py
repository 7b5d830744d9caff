"""FolderEvents (fs_events.py) with the real kernel: a change ends the wait, no change lets it
time out, a folder deleted and made again is watched anew, and dropped folders are not."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from batchai_jupyter.node.fs_events import FolderEvents


@pytest.fixture
def events() -> FolderEvents:
    ev = FolderEvents()
    if not ev.active:
        pytest.skip(reason="inotify is not available here (the tick is the only wake-up)")
    yield ev
    ev.close()


def _later(action: object, delay: float = 0.2) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), action()))  # type: ignore[operator]
    thread.start()
    return thread


def test_a_write_ends_the_wait_and_quiet_times_out(events: FolderEvents, tmp_path: Path) -> None:
    events.watch([str(tmp_path)])
    assert events.wait(0.05) is False
    (tmp_path / "log.txt").write_text("")
    assert events.wait(0.0) is True           # the create is pending already
    with (tmp_path / "log.txt").open("a") as fh:
        writer = _later(lambda: (fh.write("line\n"), fh.flush()))
        assert events.wait(60) is True         # woken by the append, long before the timeout
        writer.join()
    assert events.wait(1) is True              # the close
    assert events.wait(0.05) is False          # nothing left pending


def test_a_folder_made_again_is_watched_and_a_dropped_one_is_not(events: FolderEvents, tmp_path: Path) -> None:
    folder, other = tmp_path / "run", tmp_path / "other"
    folder.mkdir()
    other.mkdir()
    events.watch([str(folder), str(other), str(tmp_path / "not-yet")])
    (folder / "z").write_text("")
    assert events.wait(1) is True
    (folder / "z").unlink()
    folder.rmdir()
    assert events.wait(1) is True              # the deletion in it (its watch is then removed)
    folder.mkdir()
    events.watch([str(folder)])                # made anew: watched again; other: dropped
    (other / "x").write_text("")
    assert events.wait(0.05) is False
    (folder / "y").write_text("")
    assert events.wait(60) is True


def test_a_growing_file_ends_waits_once_per_settle_and_loses_no_change(tmp_path: Path) -> None:
    ev = FolderEvents(ignore=("heartbeat",), settle=30.0)  # as the engine: .tmp files wake nobody
    if not ev.active:
        pytest.skip(reason="inotify is not available here (the tick is the only wake-up)")
    try:
        ev.watch([str(tmp_path)])
        log, done = tmp_path / "stdout.txt", tmp_path / "status.json"
        with log.open("a") as fh:
            fh.write("first\n")
            fh.flush()
            assert ev.wait(60) is True           # the first growth after a quiet spell: at once
            fh.write("second\n")
            fh.flush()                           # growth again, well within the settle time ...
            renamer = _later(lambda: ((tmp_path / "status.tmp").write_text("{}"),
                                      (tmp_path / "status.tmp").rename(done)), 0.3)
            assert ev.wait(60) is True
            assert done.exists()                 # ... so only the file renamed into place ended it
            renamer.join()
    finally:
        ev.close()
    short = FolderEvents(settle=0.2)
    try:
        short.watch([str(tmp_path)])
        with log.open("a") as fh:
            fh.write("third\n")
            fh.flush()
            assert short.wait(60) is True
            fh.write("fourth\n")
            fh.flush()
            assert short.wait(60) is True        # growth within the settle time ends the wait at its end
    finally:
        short.close()

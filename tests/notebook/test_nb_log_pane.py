"""The log pane's kernel side: only new bytes go to the front end, a late view gets the kept
tail once, and terminal output (\\r redraws, colours) reads as a terminal shows it."""
from __future__ import annotations

from pathlib import Path

from batchai_jupyter.notebook.log_pane import LogPane
from batchai_jupyter.view.terminal import ScreenBuffer, collapse_cr, screen_text, tail_offset
from tests.notebook.nb_helpers import recording_comms


def _custom(sent: list[dict]) -> list[dict]:
    return [m["data"]["content"] for m in sent
            if m["type"] == "comm_msg" and m["data"].get("method") == "custom"]


def test_pane_sends_only_what_is_new(tmp_path: Path) -> None:
    log = tmp_path / "stdout.txt"
    log.write_text("first\n")
    with recording_comms() as sent:
        pane = LogPane(log)
        chunks = ["second\n", "third, no newline yet", " ... done\n"]
        for chunk in chunks:
            with open(log, "a") as fh:
                fh.write(chunk)
            assert pane.poll()
        assert not pane.poll()  # nothing new: nothing sent
        appends = [c for c in _custom(sent) if c["kind"] == "append"]
        assert [c["text"] for c in appends] == chunks  # deltas, a line cut mid-way included
        assert [c["seq"] for c in appends] == [1, 2, 3]
        assert pane.text == "first\nsecond\nthird, no newline yet ... done\n"
        # a view opened now asks once and gets the kept tail with the last sequence number
        pane._on_front_end(pane, {"kind": "sync"}, [])
        reset = _custom(sent)[-1]
        assert reset["kind"] == "reset" and reset["seq"] == 3 and reset["text"] == pane.text
        # the whole file on request ("open full log")
        pane._on_front_end(pane, {"kind": "full"}, [])
        assert _custom(sent)[-1]["text"] == log.read_text()


def test_pane_follows_another_file_and_a_truncated_one(tmp_path: Path) -> None:
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    out.write_text("out\n")
    err.write_text("Traceback (most recent call last):\nValueError: x\n")
    with recording_comms() as sent:
        pane = LogPane(out)
        pane.switch(err)
        reset = _custom(sent)[-1]
        assert reset["kind"] == "reset" and reset["file"] == "stderr.txt"
        assert "ValueError: x" in reset["text"] and pane.file == "stderr.txt"
        err.write_text("new\n")  # replaced by a shorter file: read again from its start
        assert pane.poll()
        assert _custom(sent)[-1]["kind"] == "reset" and pane.text == "new\n"


def test_a_long_log_keeps_its_last_lines_and_counts_the_rest(tmp_path: Path) -> None:
    log = tmp_path / "stdout.txt"
    log.write_text("".join(f"line {i}\n" for i in range(300_000)))
    offset, earlier = tail_offset(log, 5000)
    assert earlier == 300_000 - 5000
    assert log.read_bytes()[offset:].startswith(b"line 295000\n")
    pane = LogPane(log, max_lines=5000)
    pane.poll()
    assert pane.screen.earlier == 295_000 and pane.screen.lines[0] == "line 295000"
    buf = ScreenBuffer(max_lines=3)
    buf.feed("a\nb\nc\nd\ne")
    assert buf.lines == ["b", "c", "d"] and buf.partial == "e" and buf.earlier == 1


def test_progress_bars_and_colours_read_as_a_terminal_shows_them() -> None:
    bar = "".join(f"\r{p:3d}%|{'#' * (p // 10):10s}|" for p in range(0, 101, 10)) + "\n"
    assert screen_text(bar) == "100%|##########|\n"
    assert collapse_cr("abcdef\rXY") == "XYcdef"
    assert screen_text("\x1b[31mred\x1b[0m plain") == "red plain"


def test_full_log_through_the_kernel_says_where_it_was_cut(tmp_path: Path) -> None:
    """Without the server's file route the kernel sends the file, cut on a line boundary at
    full_max_bytes; the message says so (the browser shows it) and names the file's path."""
    files = tmp_path / "files"
    (files / "logs").mkdir(parents=True)
    log = files / "logs" / "train.log"
    log.write_text("".join(f"line {i:04d}\n" for i in range(1000)))  # 10 bytes a line
    with recording_comms() as sent:
        pane = LogPane(log, run_id="exp_1_ab", root=files)
        assert (pane.run_id, pane.file_path, pane.file) == ("exp_1_ab", "logs/train.log", "train.log")
        pane.full_max_bytes = 2005
        pane._on_front_end(pane, {"kind": "full"}, [])
        full = _custom(sent)[-1]
        assert full["truncated"] and full["size"] == 10_000 and full["shown"] == 2000
        assert full["text"].splitlines()[-1] == "line 0199" and full["path"] == str(log)
        pane.full_max_bytes = 10_000
        pane._on_front_end(pane, {"kind": "full"}, [])
        full = _custom(sent)[-1]
        assert not full["truncated"] and full["text"] == log.read_text()
        other = tmp_path / "elsewhere.txt"  # outside the run's files: no name for the server
        other.write_text("x\n")
        pane.switch(other)
        assert pane.file_path == ""

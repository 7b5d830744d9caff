"""Log ranges and tails cut only between UTF-8 characters; metric downsampling keeps extremes."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from batchai_jupyter.server.logs import BLOCK, read_range, read_tail
from batchai_jupyter.server.series import downsample


@pytest.mark.parametrize("lines", [1, 3, 1000, 5000])
def test_tail_is_what_tail_prints(tmp_path: Path, lines: int) -> None:
    path = tmp_path / "log.txt"
    path.write_text("".join(f"línea {i} €😀 {'x' * (i % 97)}\n" for i in range(20_000)))
    got = read_tail(path, lines, final=True)
    expected = subprocess.run(["tail", "-n", str(lines), str(path)], capture_output=True, check=True).stdout
    assert got["text"].encode() == expected
    assert got["next_offset"] == got["size"] == path.stat().st_size
    assert path.read_bytes()[got["offset"]:] == expected


def test_tail_without_final_newline_and_short_files(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"a\nb\nc")
    assert read_tail(path, 2, True)["text"] == "b\nc"
    assert read_tail(path, 10, True)["text"] == "a\nb\nc"
    path.write_bytes(b"")
    assert read_tail(path, 10, True)["text"] == ""


def test_tail_of_a_growing_file_stops_before_a_half_written_character(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes("one\ntwo €".encode()[:-1])  # the euro sign's last byte not written yet
    got = read_tail(path, 5, final=False)
    assert got["text"] == "one\ntwo " and got["next_offset"] == got["size"] - 2


def test_ranges_never_split_a_character(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    data = "é€😀x\n".encode() * 3
    path.write_bytes(data)
    for offset in range(len(data) + 2):
        for limit in range(12):
            got = read_range(path, offset, limit, final=False)
            piece = data[got["offset"]:got["next_offset"]]
            assert piece.decode() == got["text"]  # whole characters only
            assert got["offset"] - min(offset, len(data)) in (0, 1, 2, 3)  # moved to the next character
            assert got["offset"] <= got["next_offset"] <= max(min(offset + limit, len(data)), got["offset"])
    # consecutive reads from next_offset cover the file exactly once
    offset, text = 0, ""
    while True:
        got = read_range(path, offset, 5, final=True)
        text += got["text"]
        if got["complete"]:
            break
        assert got["next_offset"] > offset
        offset = got["next_offset"]
    assert text.encode() == data


def test_tail_reads_only_the_end(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    with open(path, "wb") as fh:  # 64 MB of one long junk line, then ten short ones
        fh.truncate(64 * 1024 * 1024)
        fh.seek(0, 2)
        fh.write(b"\n" + b"".join(b"tail %d\n" % i for i in range(10)))
    got = read_tail(path, 10, True)
    assert got["text"].splitlines() == [f"tail {i}" for i in range(10)]
    assert got["size"] - got["offset"] < BLOCK


def test_downsample_keeps_first_last_and_extremes() -> None:
    points = [(float(i), 0.0) for i in range(10_000)]
    points[4321] = (4321.0, 99.0)
    points[777] = (777.0, -5.0)
    got = downsample(points, 100)
    assert len(got) <= 100
    assert got[0] == points[0] and got[-1] == points[-1]
    assert (4321.0, 99.0) in got and (777.0, -5.0) in got
    assert [p[0] for p in got] == sorted(p[0] for p in got)
    assert downsample(points[:50], 100) == points[:50]

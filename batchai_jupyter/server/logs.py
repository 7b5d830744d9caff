"""Byte ranges and tails of run log files, cut only between UTF-8 sequences.

A tail reads blocks backwards from the end until it has the lines asked for, so the last
1,000 lines of a 1 GB log cost what those lines cost. Offsets are byte positions: a client
asks for `[next_offset, ...)` next and never sees a character twice or split.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BLOCK = 64 * 1024
DEFAULT_LIMIT = 1024 * 1024
MAX_LIMIT = 16 * 1024 * 1024
MAX_TAIL_LINES = 100_000


def _is_continuation(byte: int) -> bool:
    return byte & 0xC0 == 0x80


def _cut_end(data: bytes) -> int:
    """The length of `data` without a UTF-8 sequence its end splits (0..3 bytes dropped)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if not _is_continuation(byte):
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 \
                else 4 if byte >> 3 == 0b11110 else 1
            return len(data) - back if need > back else len(data)
    return len(data)


def read_range(path: Path, offset: int, limit: int, final: bool) -> dict[str, Any]:
    """Bytes `[offset, offset+limit)` of the file, moved so no UTF-8 sequence is split.

    `final`: the file will not grow (its run ended); `complete` says the reader has it all."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        start = min(max(offset, 0), size)
        fh.seek(start)
        data = fh.read(min(limit, size - start) + 3)  # 3 more: the sequence the limit cuts, if any
    skip = 0
    while skip < min(3, len(data)) and start > 0 and _is_continuation(data[skip]):
        skip += 1  # an offset inside a sequence: start at the next character
    body = data[skip:skip + max(limit - skip, 0)] if limit > skip else b""
    end_of_file = start + skip + len(body) >= size
    keep = len(body) if end_of_file and final else _cut_end(body)
    body = body[:keep]
    next_offset = start + skip + len(body)
    return {"text": body.decode("utf-8", "replace"), "offset": start + skip, "next_offset": next_offset,
            "size": size, "complete": final and next_offset >= size}


def read_tail(path: Path, lines: int, final: bool) -> dict[str, Any]:
    """The last `lines` lines (a last line without a newline counts), read from the end."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        end = size
        if not final:  # a growing file: stop before a character still being written
            fh.seek(max(0, size - 4))
            tail = fh.read()
            end = size - (len(tail) - _cut_end(tail))
        pos, chunks, found = end, [], 0
        # a newline as the file's last byte ends the last line; it does not start another
        fh.seek(max(0, end - 1))
        skip_last = end > 0 and fh.read(1) == b"\n"
        start = 0
        while pos > 0:
            step = min(BLOCK, pos)
            pos -= step
            fh.seek(pos)
            block = fh.read(step)
            chunks.append(block)
            limit = len(block) - (1 if skip_last and pos + len(block) == end else 0)
            index = limit
            while True:
                index = block.rfind(b"\n", 0, index)
                if index < 0:
                    break
                found += 1
                if found == lines:
                    start = pos + index + 1
                    break
            if found == lines:
                break
        data = b"".join(reversed(chunks))
    body = data[start - pos:end - pos]
    return {"text": body.decode("utf-8", "replace"), "offset": start, "next_offset": end, "size": size,
            "complete": final and end >= size}

"""What time it is for schedules: time.time(), unless a clock file moves it.

`BATCHAI_CLOCK_FILE` names a file holding a number of seconds added to the real time; tests
write it to jump the clock forward (a day, a DST change, an engine that was down for hours)
while the engine runs, and every process that reads the same file agrees on "now". Without the
variable this is time.time() and reads no file.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

CLOCK_FILE_ENV = "BATCHAI_CLOCK_FILE"


def clock_offset() -> float:
    """Seconds the clock file adds to the real time (0 without one, or when it is unreadable)."""
    path = os.environ.get(CLOCK_FILE_ENV)
    if not path:
        return 0.0
    try:
        return float(Path(path).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0.0


def now() -> float:
    """The current time in epoch seconds, as schedules see it."""
    if not os.environ.get(CLOCK_FILE_ENV):
        return time.time()
    return time.time() + clock_offset()

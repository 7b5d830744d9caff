"""Small helpers shared by test modules (fixtures live in conftest.py)."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wait_until(predicate: Callable[[], bool], timeout: float = 60, interval: float = 0.05) -> bool:
    """Poll until predicate() is true; False after timeout (the caller asserts)."""
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


def process_gone(pid: int) -> bool:
    """The process has exited (no /proc entry, or a zombie waiting for its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True

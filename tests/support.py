"""Small helpers shared by test modules (fixtures live in conftest.py)."""
from __future__ import annotations

import time
from typing import Callable


def wait_until(predicate: Callable[[], bool], timeout: float = 60, interval: float = 0.05) -> bool:
    """Poll until predicate() is true; False after timeout (the caller asserts)."""
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False

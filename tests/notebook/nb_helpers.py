"""Helpers for the notebook tests (the `ip` shell fixture lives in conftest.py)."""
from __future__ import annotations

from tests.support import wait_until

__all__ = ["wait_until"]

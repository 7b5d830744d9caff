"""Helpers for the notebook tests (the `ip` shell fixture lives in conftest.py)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import comm
from comm.base_comm import BaseComm

from tests.support import wait_until

__all__ = ["RecordingComm", "recording_comms", "wait_until"]


class RecordingComm(BaseComm):
    """A comm that keeps every message a widget would send to the front end, and its size as
    the kernel would put it on the wire (JSON of the content, plus binary buffers)."""

    sent: ClassVar[list[dict[str, Any]]] = []

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                    buffers: Any = None, **keys: Any) -> None:
        size = len(json.dumps(data or {}, default=str)) + sum(len(b) for b in buffers or [])
        RecordingComm.sent.append({"type": msg_type, "data": data or {}, "bytes": size})


@contextmanager
def recording_comms() -> Iterator[list[dict[str, Any]]]:
    """Widgets created inside get RecordingComms; yields the list of their messages."""
    before = comm.create_comm
    RecordingComm.sent = []
    comm.create_comm = RecordingComm
    try:
        yield RecordingComm.sent
    finally:
        comm.create_comm = before

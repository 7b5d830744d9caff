"""Following a run's files like `tail -f`, across requeues: what Run.stream() yields and
wait_for_completion(show_output=True) prints, and the execution summary that ends it."""
from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

from .engine.control import ensure_engine
from .history import TERMINAL_STATUSES
from .node.fs_events import FolderEvents

if TYPE_CHECKING:
    from .run import Run

POLL_SECONDS = 0.05


def _open(path: Path) -> IO[bytes] | None:
    """A run file opened for reading, or None while it does not exist."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def follow_lines(run: Run, name: str, follow: bool, deadline: float | None = None,
             attempt: int | None = None) -> Iterator[str]:
    """stream() from `attempt` on (None: the current one when the first line is asked);
    with a deadline (time.monotonic()) it also ends once that has passed."""
    path = run.file_path(name, must_exist=False)
    if attempt is None:
        attempt = run.attempt
    fh: IO[bytes] | None = None  # kept open: it follows the file when a requeue renames it
    pending = b""
    events: FolderEvents | None = None  # the engine's copy of a line wakes us, not the next poll
    try:
        while True:
            row = run.row()
            done = not follow or row["status"] in TERMINAL_STATUSES  # read before the file: no loss
            current = int(row["properties"].get("attempt", 0))
            if fh is None and current == attempt:
                fh = _open(path)
                if fh is not None and run.attempt != attempt:  # a requeue came between:
                    fh.close()                                    # maybe the next attempt's file
                    fh = None
                    continue
            data = fh.read() if fh is not None else b""
            if data:
                lines = (pending + data).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    yield line.decode("utf-8", "replace")
                continue
            if follow and current > attempt:  # requeued: the rest of this attempt, then the next
                yield from _attempt_switch(run, name, fh, pending, attempt, current)
                if fh is not None:
                    fh.close()
                fh, pending, attempt = None, b"", current
                continue
            if done:
                if pending:
                    yield pending.decode("utf-8", "replace")
                return
            if deadline is not None and time.monotonic() > deadline:
                return
            ensure_engine(run.workspace.path)
            if events is None:
                events = FolderEvents()
            events.watch([str(path.parent)])
            events.wait(POLL_SECONDS)
    finally:
        if fh is not None:
            fh.close()
        if events is not None:
            events.close()

def _attempt_switch(run: Run, name: str, fh: IO[bytes] | None, pending: bytes, attempt: int,
                current: int) -> Iterator[str]:
    """What is left of `attempt`'s file (read from its renamed copy when `fh` never opened
    it), the whole file of any attempt between, and one line before each new attempt."""
    reasons = [e["message"] or "" for e in run.workspace.history.events(run.id)
               if e["status"] == "Queued" and (e["message"] or "").startswith("requeued")]
    run_dir = run.workspace.paths.run_dir(run.id)
    for number in range(attempt, current + 1):
        if number > attempt:
            why = reasons[number - 1] if len(reasons) >= number else "requeued"
            yield f"--- attempt {number + 1} ({why}) ---"
        if number == current:
            return
        own = fh is None or number > attempt  # else the caller's, drained to the rename
        if own:
            fh, pending = _open(run_dir / f"attempt-{number}" / name), b""
        data = pending + (fh.read() if fh is not None else b"")
        if own and fh is not None:
            fh.close()
        lines = data.split(b"\n")
        last = lines.pop()
        for line in lines:
            yield line.decode("utf-8", "replace")
        if last:
            yield last.decode("utf-8", "replace")


def print_summary(run_id: str, details: dict[str, Any], out: TextIO) -> None:
    """The execution summary that ends wait_for_completion(show_output=True)."""
    print(file=out)
    print("Execution Summary", file=out)
    print("=" * 17, file=out)
    print(f"RunId: {run_id}", file=out)
    print(f"Status: {details['status']}", file=out)
    if details.get("duration") is not None:
        print(f"Duration: {_dt.timedelta(seconds=round(details['duration']))}", file=out)
    error = details.get("error") or {}
    if error:
        print(f"Error: {error.get('message')}", file=out)
        lines = error.get("last_lines") or []
        if lines:
            name = error.get("failed_process")
            print(f"Last {len(lines)} lines of the failing process{f' {name}' if name else ''}:", file=out)
            for line in lines:
                print(f"    {line}", file=out)
    print(file=out, flush=True)

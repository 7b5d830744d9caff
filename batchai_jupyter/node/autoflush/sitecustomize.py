"""Flush a job's stdout and stderr on a short timer, so its writes stay buffered but live.

The agent puts this folder first on a Python job's PYTHONPATH (instead of PYTHONUNBUFFERED=1,
which makes a print-heavy job pay one write per print). A thread flushes both streams every
BATCHAI_FLUSH_SECONDS (default 0.05; 0 turns it off): a slow printer's lines show within that
time, a fast one writes in blocks of up to CHUNK_BYTES (stdout's text buffer, 8 KiB by default:
each write wakes whatever follows the file, and 100 MB of prints are 12,800 writes of 8 KiB, 100
of 1 MiB). A job killed outright loses at most what it printed in the last interval, as it would
with any buffer. A fork flushes first (a child never repeats the parent's buffered lines) and
the child gets its own flusher; the thread is stopped before the interpreter's own final flush.
Then the sitecustomize this one shadows (e.g. Debian's) runs as it would have.

Kept to syntax every Python a job may name (python_interpreter) can read.
"""
import atexit
import os
import sys
import threading

CHUNK_BYTES = 1 << 20


def _flush_now():
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001, S110 -- a closed or replaced stream: nothing to flush
            pass


def _start_flusher():
    try:
        interval = float(os.environ.get("BATCHAI_FLUSH_SECONDS", "0.05"))
    except ValueError:
        return
    if interval <= 0:
        return
    try:  # how much text print() gathers before it writes (CPython's TextIOWrapper)
        sys.stdout._CHUNK_SIZE = max(sys.stdout._CHUNK_SIZE, CHUNK_BYTES)
    except Exception:  # noqa: BLE001, S110 -- another kind of stream: its own buffering stays
        pass
    stop = threading.Event()

    def loop():
        while not stop.wait(interval):
            _flush_now()

    thread = threading.Thread(target=loop, name="batchai-autoflush")
    thread.daemon = True
    thread.start()

    def end():
        stop.set()
        thread.join(1.0)

    atexit.register(end)


def _chain():
    """Run the next sitecustomize on sys.path, the one this module shadows."""
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            with open(candidate) as fh:
                code = compile(fh.read(), candidate, "exec")
            exec(code, {"__name__": "sitecustomize", "__file__": candidate})  # noqa: S102
            return


_start_flusher()
if hasattr(os, "register_at_fork"):
    # flushed before a fork, so a child does not write its copy of the parent's buffer again
    os.register_at_fork(before=_flush_now, after_in_child=_start_flusher)
try:
    _chain()
except Exception as exc:  # noqa: BLE001 -- a broken site file must not stop the job
    sys.stderr.write("batchai: the sitecustomize after ours failed: {!r}\n".format(exc))  # noqa: UP032

"""Progress callbacks, kept out of the transfer code.

Transfers only call `set_size`, `advance` and `close`; what the user sees is chosen here:
tqdm.auto (a widget bar in a notebook, a text bar in a terminal), nothing, or the caller's own.
The callbacks are thread-safe because parallel transfers report from worker threads.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Callback:
    """Silent base: counts bytes so tests and callers can read `done` / `total`."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self._lock = threading.Lock()

    def set_size(self, total: int) -> None:
        with self._lock:
            self.total = total
        self.on_size(total)

    def advance(self, nbytes: int) -> None:
        if nbytes <= 0:
            return
        with self._lock:
            self.done += nbytes
            done = self.done
        self.on_advance(nbytes, done)

    def close(self) -> None:
        self.on_close()

    # hooks for subclasses
    def on_size(self, total: int) -> None: ...

    def on_advance(self, nbytes: int, done: int) -> None: ...

    def on_close(self) -> None: ...


class FunctionCallback(Callback):
    """Calls fn(done_bytes, total_bytes) after every advance."""

    def __init__(self, fn: Callable[[int, int], Any]):
        super().__init__()
        self.fn = fn

    def on_advance(self, nbytes: int, done: int) -> None:
        self.fn(done, self.total)


class TqdmCallback(Callback):
    """A tqdm.auto bar in bytes; imported lazily so nodes never load notebook code."""

    def __init__(self, desc: str = "", **tqdm_kwargs: Any):
        super().__init__()
        self.desc = desc
        self.kwargs = tqdm_kwargs
        self.bar: Any = None

    def on_size(self, total: int) -> None:
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, desc=self.desc, unit="B", unit_scale=True,
                        unit_divisor=1024, **self.kwargs)

    def on_advance(self, nbytes: int, done: int) -> None:
        if self.bar is not None:
            with self._lock:
                self.bar.update(nbytes)

    def on_close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def make_callback(show_progress: Any, desc: str = "") -> Callback:
    """True -> tqdm.auto bar, False/None -> silent, a Callback -> itself, a callable -> wrapped."""
    if isinstance(show_progress, Callback):
        return show_progress
    if show_progress is True:
        return TqdmCallback(desc)
    if callable(show_progress):
        return FunctionCallback(show_progress)
    return Callback()

"""tqdm.auto progress bars for taking a snapshot (a widget bar in a notebook, text elsewhere).

Experiment.submit reports progress through a plain callback (bytes_done, bytes_total); this
module only decides what the user sees, so the snapshot code stays free of UI.
"""
from __future__ import annotations

from typing import Any, final

#: Below this many bytes to store, no bar is drawn: small snapshots finish before it would help.
DEFAULT_MIN_BYTES = 8 * 1024 * 1024


@final
class SnapshotProgress:
    """A callable for `Experiment.submit(progress=...)` that draws a tqdm.auto bar when needed."""

    def __init__(self, description: str = "snapshot", min_bytes: int = DEFAULT_MIN_BYTES,
                 **tqdm_kwargs: Any):
        self.description = description
        self.min_bytes = min_bytes
        self.tqdm_kwargs = tqdm_kwargs
        self.bar: Any = None
        self.done = 0
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.bar is None:
            if total < self.min_bytes:
                return
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=self.description, unit="B", unit_scale=True,
                            unit_divisor=1024, leave=True, **self.tqdm_kwargs)
        self.bar.total = total
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> SnapshotProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

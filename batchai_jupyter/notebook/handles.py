"""The displays of a live view, each turned into the static summary once the view is done.

A saved notebook then holds the summary (HTML, charts as images), never a widget view that a
new kernel could not find ("model not found").
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class FinalDisplays:
    """Display handles of one view and the bundle they end with.

    Parameters
    ----------
    final_bundle: builds the static bundle (called once, when the displays are switched).
    name: what log messages call the view.
    """

    def __init__(self, final_bundle: Callable[[], dict[str, Any]], name: str):
        self._final_bundle = final_bundle
        self._name = name
        self._handles: list[Any] = []
        self._lock = threading.Lock()

    def add(self, handle: Any) -> None:
        with self._lock:
            self._handles.append(handle)

    def finish(self) -> None:
        """Switch every display to the static bundle (a front end that went away is skipped)."""
        with self._lock:
            handles, self._handles = self._handles, []
        if not handles:
            return
        bundle = self._final_bundle()
        for handle in handles:
            try:
                handle.update(bundle, raw=True)
            except Exception as exc:  # the front end went away: nothing to update
                log.warning("%s: display update failed: %s", self._name, exc, exc_info=True)

    def finish_at_next_cell(self, still_done: Callable[[], bool]) -> None:
        """Switch when the next cell starts (if `still_done()` then): the interactive view of a
        finished run lasts while its own cell is the last one run."""
        from IPython import get_ipython
        shell = get_ipython()
        if shell is None:
            return

        def switch(*_args: Any) -> None:
            shell.events.unregister("pre_run_cell", switch)
            if still_done():
                self.finish()

        shell.events.register("pre_run_cell", switch)

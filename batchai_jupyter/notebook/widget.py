"""RunDetails: a live view of one run built from stock ipywidgets 8 (no custom front end).

A background thread reads the workspace (never a node) a few times a second, pushes what
changed into the widgets' traits, and stops when the run and its child runs have ended. The
kernel is never blocked, and RunDetails(ws.get_run(id)) rebuilds the view after a restart.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import ipywidgets as W
from traitlets import Bool, Unicode

from ..history import TERMINAL_STATUSES
from ..records import RunRow
from ..view import render
from ..view.reader import (
    LogTail,
    MetricsTail,
    all_ended,
    children_rows,
    log_file_names,
    sort_children,
)
from ..view.summary import run_summary_html

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1          # log and status reads: lines show up well under half a second
SLOW_POLL_SECONDS = 1.0     # file list, child runs and the duration clock
ORDERS = ("descending", "ascending")


class RunGone(RuntimeError):
    """The run was deleted from the workspace while the widget showed it."""


class RunDetails(W.VBox):
    """The live view of a run: status, properties, logs, metrics, child runs and a cancel button.

    `status` and `log_text` mirror what is shown (plain traits, not sent to the front end).
    """

    status = Unicode("")
    log_text = Unicode("")
    running = Bool(False)

    def __init__(self, run: Any, poll_seconds: float = POLL_SECONDS, start: bool = True, **kwargs: Any):
        self.run = run
        self.poll_seconds = poll_seconds
        self._history = run.workspace.history
        self._files = run.files_dir
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        main = run.main_log()
        self._tail = LogTail(self._files / main)
        self._metrics = MetricsTail(self._history, run.id)
        self._row: RunRow | None = None
        self._child_metric: str | None = None
        self._last_slow = 0.0
        self._handles: list[Any] = []  # displays whose static summary is refreshed at the end

        self.badge = W.HTML(layout=W.Layout(width="auto"))
        self.title = W.HTML(f"<b>{render.esc(run.id)}</b>")
        self.cancel_button = W.Button(description="Cancel run", button_style="danger", icon="stop",
                                      tooltip="Ask the engine to stop this run")
        self.cancel_button.on_click(self._on_cancel)
        self.message = W.HTML()
        self.properties = W.HTML(layout=W.Layout(width="38%", min_width="260px"))
        self.log_picker = W.Dropdown(options=[main], value=main, description="Log file:",
                                     layout=W.Layout(width="auto"))
        self.log_picker.observe(self._on_pick, names="value")
        self.log_view = W.HTML(render.log_pre(""), layout=W.Layout(width="100%"))
        self.metrics = W.HTML(layout=W.Layout(display="none"))
        self.child_sort = W.Dropdown(options=[], description="Sort by:", layout=W.Layout(width="auto"))
        self.child_order = W.Dropdown(options=ORDERS, value="descending", layout=W.Layout(width="140px"))
        self.child_sort.observe(self._on_sort, names="value")
        self.child_order.observe(self._on_sort, names="value")
        self.children_table = W.HTML()
        self.children_box = W.VBox([W.HTML("<b>Child runs</b>"),
                                    W.HBox([self.child_sort, self.child_order]), self.children_table],
                                   layout=W.Layout(display="none"))
        header = W.HBox([self.badge, self.title, self.cancel_button, self.message],
                        layout=W.Layout(align_items="center", justify_content="flex-start"))
        logs = W.VBox([self.log_picker, self.log_view], layout=W.Layout(width="62%"))
        super().__init__([header, W.HBox([self.properties, logs]), self.metrics, self.children_box],
                         **kwargs)
        self.add_class("bai-run-details")
        self._tick(force=True)
        if start:
            self.start()

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background updates (a no-op once the run and its children have ended)."""
        if self._thread is not None and self._thread.is_alive():
            return
        if self._ended:
            return
        self._stop.clear()
        self.running = True
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"RunDetails-{self.run.id}")
        self._thread.start()

    def stop(self, timeout: float | None = 5) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.running = False

    def close(self) -> None:
        self.stop()
        super().close()

    def show(self) -> None:
        """Display the widget; when the run ends its saved HTML summary is brought up to date."""
        from IPython.display import display
        with self._lock:
            handle = display(self._repr_mimebundle_(), raw=True, display_id=True)
            if handle is not None and self.running:
                self._handles.append(handle)

    def _ipython_display_(self) -> None:
        self.show()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background thread has stopped (tests and benchmarks use it)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def _ended(self) -> bool:
        return (self._row is not None and self._row["status"] in TERMINAL_STATUSES
                and all_ended(self._history, self.run.id))

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if self._tick():
                        break
                except RunGone as exc:  # deleted from the history: nothing more will come
                    self.message.value = f'<span style="color:#dc3545">{render.esc(exc)}</span>'
                    break
                except Exception as exc:  # a busy database or a vanished file: say so, go on
                    log.warning("RunDetails %s: %s", self.run.id, exc, exc_info=True)
                    self.message.value = f'<span style="color:#dc3545">{render.esc(exc)}</span>'
                self._stop.wait(self.poll_seconds)
        finally:
            with self._lock:
                self.running = False
                self._refresh_displays()
            self._history.close()  # this thread's own SQLite connection

    def _refresh_displays(self) -> None:
        """Re-send the bundle of every display of this widget: a saved notebook keeps the
        final summary as text/html next to the widget view."""
        for handle in self._handles:
            try:
                handle.update(self._repr_mimebundle_(), raw=True)
            except Exception as exc:  # the front end went away: nothing to update
                log.warning("RunDetails %s: display update failed: %s", self.run.id, exc,
                            exc_info=True)
        self._handles.clear()

    # -- one round of reads -------------------------------------------------------------------------
    def _tick(self, force: bool = False) -> bool:
        """Read what changed and show it; True when the run and its children have ended."""
        row = self._history.run_row(self.run.id)  # status before files: a final status means
        if row is None:                          # every line is already in the workspace
            raise RunGone(f"run {self.run.id} is no longer in the workspace")
        now = time.monotonic()
        slow = force or now - self._last_slow >= SLOW_POLL_SECONDS
        final = row["status"] in TERMINAL_STATUSES
        status_changed = self._row is None or row["status"] != self._row["status"]
        self._row = row
        if status_changed or slow or final:
            self._show_status(row)
        with self._lock:
            if slow or final or status_changed:
                self._refresh_files()
            if self._tail.read() or (final and self._tail.flush()):
                self._show_log()
        if self._metrics.read():
            self.metrics.value = render.metrics_html(self._metrics.series, self._metrics.others)
            self.metrics.layout.display = None
        ended = False
        if slow or final:
            self._last_slow = now
            ended = self._refresh_children(final)
        return ended

    def _show_status(self, row: RunRow) -> None:
        self.status = row["status"]
        self.badge.value = render.badge(row["status"])
        self.title.value = (f'<b>{render.esc(row["experiment"])}</b> · run {row["number"]} · '
                            f'<code>{render.esc(row["id"])}</code>')
        self.properties.value = render.kv_table(render.run_properties(row))
        final = row["status"] in TERMINAL_STATUSES or row["status"] == "CancelRequested"
        self.cancel_button.disabled = final

    def _refresh_files(self) -> None:
        names = log_file_names(self._files)
        current = self.log_picker.value
        if current not in names:
            names = [current] + names
        if list(self.log_picker.options) != names:
            self.log_picker.options = names
            if self.log_picker.value != current:
                self.log_picker.value = current

    def _show_log(self) -> None:
        self.log_text = self._tail.text
        self.log_view.value = render.log_pre(self._tail.text)

    def _refresh_children(self, final: bool) -> bool:
        rows, names = children_rows(self._history, self.run.id, self.child_sort.value or None)
        if rows:
            if list(self.child_sort.options) != names:
                keep = self.child_sort.value
                self.child_sort.options = names
                self.child_sort.value = keep if keep in names else (names[0] if names else None)
            metric = self.child_sort.value
            self.children_table.value = render.children_html(
                sort_children(rows, self.child_order.value == "descending"), metric)
            self.children_box.layout.display = None
        return final and all(r["status"] in TERMINAL_STATUSES for r in rows)

    # -- user actions (run in the kernel's thread) -----------------------------------------------
    def _on_pick(self, change: dict[str, Any]) -> None:
        if not change["new"]:
            return
        with self._lock:
            self._tail = LogTail(self._files / change["new"])
            self._tail.read()
            if self._row is not None and self._row["status"] in TERMINAL_STATUSES:
                self._tail.flush()
            self._show_log()

    def _on_sort(self, change: dict[str, Any]) -> None:
        self._refresh_children(False)

    def _on_cancel(self, button: Any) -> None:
        button.disabled = True
        self.run.cancel()
        self.message.value = "cancel requested"

    # -- what a saved notebook keeps -----------------------------------------------------------------
    def _repr_html_(self) -> str:
        return run_summary_html(self.run)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/html"] = self._repr_html_()
        bundle["text/plain"] = repr(self.run)
        return bundle

    def __repr__(self) -> str:
        return f"RunDetails({self.run!r})"

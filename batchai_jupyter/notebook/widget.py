"""RunDetails: the live view of one run; stock ipywidgets for the controls, anywidgets fed
with deltas for the log (log_pane.py) and the metric charts (metrics_pane.py), and the child
runs' table (children_view.py).

A background thread reads the workspace (never a node) a few times a second, sends only what
changed, and stops when the run and its child runs have ended. Then every display it was shown
in becomes the static summary (charts as images), so a saved notebook reopens with it, with or
without a kernel. RunDetails(ws.get_run(id)) brings the live view back after a restart.
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
from ..view.children import check_goal
from ..view.reader import MetricsTail, all_ended, log_file_names
from ..view.summary import run_summary_html
from ..view.terminal import screen_text
from .children_view import ChildrenView
from .handles import FinalDisplays
from .log_pane import LogPane
from .metrics_pane import MetricsPane
from .save_hook import marker_metadata

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1          # log and status reads: lines show up well under half a second
SLOW_POLL_SECONDS = 1.0     # file list, child runs and the duration clock
WRAP = W.Layout(display="flex", flex_flow="row wrap", align_items="center", width="100%")


class RunGone(RuntimeError):
    """The run was deleted from the workspace while the widget showed it."""


def stderr_of(names: list[str], process: str | None) -> str | None:
    """The stderr file of a failing process (stderr.txt for a single process)."""
    errs = [n for n in names if n.startswith("stderr") and "job_prep" not in n]
    if process:
        tag = process.replace(":", "-")
        exact = [n for n in errs if n.endswith(f"-{tag}.txt") or f"-{tag}" in n]
        if exact:
            return exact[0]
        if process == "job_prep":
            return next((n for n in names if n.startswith("stderr-job_prep")), None)
    return errs[0] if errs else None


class RunDetails(W.VBox):
    """The live view of a run: a one-line header (status, name, duration, cluster, nodes,
    Cancel), folded properties, the log pane with a file picker, metric charts and child runs.

    Parameters
    ----------
    run: the Run to show.
    poll_seconds: how often the log and status are read.
    start: start the background updates at once (tests start them later).
    primary_metric: the metric child runs are compared by (default: one every child logs).
    goal: "maximize" or "minimize" the primary metric (default: minimize losses and errors).

    `status` and `log_text` mirror what is shown (plain traits, not sent to the front end).
    """

    status = Unicode("")
    log_text = Unicode("")
    running = Bool(False)

    def __init__(self, run: Any, poll_seconds: float = POLL_SECONDS, start: bool = True,
                 primary_metric: str | None = None, goal: str | None = None, **kwargs: Any):
        if goal is not None:
            check_goal(goal, primary_metric)
        self.run = run
        self.poll_seconds = poll_seconds
        self._history = run.workspace.history
        self._files = run.files_dir
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._metrics = MetricsTail(self._history, run.id)
        self._attempt = 0  # a requeue starts a new attempt: new log files, new metrics
        self._row: RunRow | None = None
        self._last_slow = 0.0
        self._failure_shown = False
        self._progress = ""  # the children's progress shown in the badge
        self._displays = FinalDisplays(self.static_bundle, f"RunDetails {run.id}")

        main = run.main_log()
        self.badge = W.HTML()
        self.title = W.HTML(f"<b>{render.esc(run.id)}</b>")
        self.facts = W.HTML()
        self.cancel_button = W.Button(description="Cancel run", button_style="danger", icon="stop",
                                      tooltip="Ask the engine to stop this run",
                                      layout=W.Layout(width="auto"))
        self.cancel_button.on_click(self._on_cancel)
        self.message = W.HTML()
        self.failure = W.HTML(layout=W.Layout(display="none"))
        self.properties = W.HTML()
        self.log_picker = W.Dropdown(options=[main], value=main, description="Log file:",
                                     layout=W.Layout(width="auto"))
        self.log_picker.observe(self._on_pick, names="value")
        self.pane = LogPane(self._files / main, run_id=run.id, root=self._files,
                            layout=W.Layout(width="100%"))
        self.pane.listeners.append(self._on_text)
        self.metrics = MetricsPane(self._metrics, layout=W.Layout(display="none", width="100%"))
        self.children_view = ChildrenView(run.id, self._history, self._child_details,
                                          primary_metric, goal)
        header = W.Box([self.badge, self.title, self.facts, self.cancel_button, self.message],
                       layout=WRAP)
        header.add_class("bai-header")
        super().__init__([header, self.failure, self.properties, self.log_picker, self.pane,
                          self.metrics, self.children_view], layout=W.Layout(width="100%"), **kwargs)
        self.add_class("bai-run-details")
        self.log_text = self.pane.text
        self._tick(force=True)
        if start:
            self.start()

    def _child_details(self, run_id: str) -> RunDetails:
        return RunDetails(self.run.workspace.get_run(run_id), self.poll_seconds)

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
        if not hasattr(self, "_stop"):  # refused in the constructor: nothing was started
            return
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self.running = False

    def close(self) -> None:
        self.stop()
        if hasattr(self, "children_view"):
            self.children_view.close_child()
        super().close()

    def show(self) -> None:
        """Display the widget; when the run ends that display becomes the static summary. The
        view of a run that had already ended stays interactive until the next cell runs. The
        display is marked (save_hook.py): a notebook saved before then keeps the summary."""
        from IPython.display import display
        with self._lock:
            handle = display(self._repr_mimebundle_(), raw=True, display_id=True,
                             metadata=marker_metadata(self.run.id))
            if handle is None:
                return
            self._displays.add(handle)
            if not self.running:
                self._displays.finish_at_next_cell(lambda: not self.running)

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
                if not self._stop.is_set():
                    self._displays.finish()
            self._history.close()  # this thread's own SQLite connection

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
        attempt = int(row["properties"].get("attempt") or 0)
        if attempt != self._attempt:
            self._new_attempt(attempt)
        with self._lock:
            if slow or final or status_changed:
                self._refresh_files()
            self.pane.poll()
        if (self.metrics.poll() or not self.metrics.empty) and self.metrics.layout.display == "none":
            self.metrics.layout.display = None
        ended = False
        if slow or final:
            self._last_slow = now
            sweep = self.children_view.refresh()
            self._progress = sweep.progress()
            ended = final and all(r["status"] in TERMINAL_STATUSES for r in sweep.rows)
        if status_changed or slow or final:
            self._show_status(row, self._progress)
        if final and row.get("error") and not self._failure_shown:
            self._show_failure(row)
        return ended

    def _new_attempt(self, attempt: int) -> None:
        """The run was requeued: follow the new attempt's files from their start, said in the pane
        (the same line run.stream() yields)."""
        reasons = [e["message"] for e in self._history.events(self.run.id)
                   if e["status"] == "Queued" and (e["message"] or "").startswith("requeued")]
        why = reasons[attempt - 1] if 0 < attempt <= len(reasons) else "requeued"
        with self._lock:
            self._attempt = attempt
            self.pane.switch(self._files / self.log_picker.value,
                             f"--- attempt {attempt + 1} ({why}) ---\n")
            self.log_text = self.pane.text
            self._metrics = MetricsTail(self._history, self.run.id, attempt)
            self.metrics.switch(self._metrics)

    def _show_status(self, row: RunRow, progress: str = "") -> None:
        self.status = row["status"]
        _set(self.badge, render.badge(row["status"], progress))
        _set(self.title, f'<b>{render.esc(row["experiment"])}</b> · run {row["number"]} · '
                         f'<code>{render.esc(row["id"])}</code>')
        _set(self.facts, f'<span style="font-size:12px">{render.facts_html(row)}</span>')
        _set(self.properties, render.properties_html(render.run_properties(row)))
        final = row["status"] in TERMINAL_STATUSES or row["status"] == "CancelRequested"
        self.cancel_button.disabled = final

    def _show_failure(self, row: RunRow) -> None:
        """Say why the run failed and switch the log to the failing process's stderr."""
        error = row.get("error") or {}
        if row["status"] != "Failed":
            return
        self._failure_shown = True
        names = log_file_names(self._files)
        stderr = stderr_of(names, error.get("failed_process") if isinstance(error, dict) else None)
        self.failure.value = render.failure_html(error if isinstance(error, dict) else
                                                 {"message": str(error)}, stderr)
        self.failure.layout.display = None
        if stderr and stderr != self.log_picker.value:
            self._refresh_files()
            self.log_picker.value = stderr

    def _refresh_files(self) -> None:
        names = log_file_names(self._files)
        current = self.log_picker.value
        if current not in names:
            names = [current] + names
        if list(self.log_picker.options) != names:
            self.log_picker.options = names
            if self.log_picker.value != current:
                self.log_picker.value = current

    def _on_text(self, _text: str) -> None:
        self.log_text = self.pane.text

    # -- user actions (run in the kernel's thread) -----------------------------------------------
    def _on_pick(self, change: dict[str, Any]) -> None:
        if not change["new"]:
            return
        with self._lock:
            self.pane.switch(self._files / change["new"])
            self.log_text = self.pane.text

    def _on_cancel(self, button: Any) -> None:
        button.disabled = True
        self.run.cancel()
        self.message.value = "cancel requested"

    # -- what a saved notebook keeps -----------------------------------------------------------------
    def static_bundle(self) -> dict[str, Any]:
        """The final display: the summary as HTML (charts as images) and the run as text."""
        return {"text/html": self._repr_html_(), "text/plain": repr(self.run)}

    def _repr_html_(self) -> str:
        return run_summary_html(self.run)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/html"] = self._repr_html_()
        bundle["text/plain"] = repr(self.run)
        return bundle

    @property
    def plain_log(self) -> str:
        """The pane's text as a terminal shows it (no escapes, progress bars redrawn)."""
        return screen_text(self.log_text)

    def __repr__(self) -> str:
        return f"RunDetails({self.run!r})"


def _set(widget: W.HTML, value: str) -> None:
    if widget.value != value:
        widget.value = value

"""Run: a client's handle on one run — status, logs, metrics, files, cancel, children.

Every read comes from the workspace (history.db and runs/<id>/files), never from a node, so a
Run works the same from the submitting kernel, another process, or after a kernel restart.

No notebook code here: in a plain IPython or nbconvert a Run shows the static HTML summary
(view/summary.py, through `_repr_html_`); `%load_ext batchai_jupyter` registers the live widget
as the display of Run objects (notebook/display.py).
"""
from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .engine.control import ensure_engine, wake_engine
from .errors import FileNotInRun, RunActive, RunFailed, RunNotFound, WaitTimeout
from .history import ACTIVE_STATUSES, TERMINAL_STATUSES
from .node.fs_events import FolderEvents
from .records import RunRow
from .run_aml import AzureMLRunNames
from .run_context import JobRun
from .run_context.job_files import copy_run_file
from .run_stream import POLL_SECONDS, follow_lines, print_summary
from .view.metrics import summarize_metrics
from .view.rows import duration_seconds, iso_utc

if TYPE_CHECKING:
    from .spec import JobSpec
    from .submission import Progress
    from .workspace import Experiment, Workspace

__all__ = ["Run"]

class Run(AzureMLRunNames):
    """A run of the workspace, by id (docs/reference/python-api.md; Azure ML v1's names)."""

    def __init__(self, workspace: Workspace, run_id: str):
        self.workspace = workspace
        self.id = run_id

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, status={self.status!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id and other.workspace.path == self.workspace.path

    def __hash__(self) -> int:
        return hash(self.id)

    # -- display: the static summary (the extension registers the live widget for Run) --------
    def _repr_html_(self) -> str:
        from .view.summary import run_summary_html
        return run_summary_html(self)

    # -- inside a job ----------------------------------------------------------------------------
    @staticmethod
    def get_context(allow_offline: bool = True) -> JobRun:
        """The current run inside a job; outside one an offline run that prints (or an error)."""
        return JobRun.get_context(allow_offline)

    # -- state ---------------------------------------------------------------------------------------
    def row(self) -> RunRow:
        """The run's record in the run history, read now (status, spec, tags, times, ...)."""
        row = self.workspace.history.run_row(self.id)
        if row is None:
            raise RunNotFound(f"run {self.id!r} not found")
        return row

    _row = row

    @property
    def status(self) -> str:
        row = self._row()  # a run with no cluster (start_logging, a job's child) needs no engine
        return self._revive(str(row["status"])) if row["cluster"] is not None else str(row["status"])

    def _revive(self, status: str | None) -> str:
        """A run that is still active needs an engine: start one if it died (rate-limited), so
        `while run.status != "Completed"` never waits on a dead engine."""
        if status in ACTIVE_STATUSES:
            try:
                ensure_engine(self.workspace.path)
            except OSError:  # a read-only workspace is still readable
                pass
        return str(status)

    @property
    def experiment(self) -> Experiment:
        return self.workspace.experiment(self._row()["experiment"])

    @property
    def cluster(self) -> str | None:
        cluster = self._row()["cluster"]
        return None if cluster is None else str(cluster)

    @property
    def number(self) -> int:
        return int(self._row()["number"])

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._row()["tags"])

    @property
    def parent(self) -> Run | None:
        parent_id = self._row()["parent_id"]
        return Run(self.workspace, parent_id) if parent_id else None

    @property
    def attempt(self) -> int:
        """Which attempt of the run is current: 0, then one more after each requeue."""
        return int(self._row()["properties"].get("attempt", 0))

    @property
    def files_dir(self) -> Path:
        """runs/<id>/files/ of the workspace: the run's logs, outputs and artifacts."""
        return self.workspace.paths.run_files(self.id)

    def tag(self, key: str, value: str = "") -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: dict[str, str]) -> None:
        self.workspace.history.update_run(self.id, tags={**self.tags, **{k: str(v) for k, v in tags.items()}})

    def get_details(self) -> dict[str, Any]:
        """A dict in the shape Azure ML users know (runId, status, times, definition, error...)."""
        row = self._row()
        self._revive(row["status"])
        spec = row["spec"]
        details = {
            "runId": row["id"], "number": row["number"], "experiment": row["experiment"],
            "target": row["cluster"], "status": row["status"], "parentRunId": row["parent_id"],
            "submittedTimeUtc": iso_utc(row["created"]), "startTimeUtc": iso_utc(row["started"]),
            "endTimeUtc": iso_utc(row["ended"]), "duration": duration_seconds(row),
            "tags": row["tags"], "properties": row["properties"],
            "nodes": [n["id"] for n in row["nodes"]],
            "runDefinition": {k: spec.get(k) for k in (
                "script", "command", "arguments", "node_count", "process_count_per_node",
                "distribution", "environment_variables", "job_preparation", "priority",
                "max_wall_clock_seconds", "gpus_per_process", "source_directory", "inputs",
                "outputs", "mounts")},
            "logFiles": {name: str(self.files_dir / name)
                         for name in self.get_file_names() if not name.startswith("outputs/")},
            "events": self.workspace.history.events(self.id),
        }
        if row["error"]:
            details["error"] = row["error"]
        from .parallel.client import is_parallel, progress
        if is_parallel(spec):  # a ParallelRunConfig's run: its progress row
            details["parallel"] = progress(self.get_metrics("parallel"))
        return details

    # -- waiting and streaming -------------------------------------------------------------------
    def main_log(self) -> str:
        """The file wait_for_completion(show_output=True) streams (the first process's stdout)."""
        from .node.process import main_log_name
        row = self._row()
        return str(row["properties"].get("main_log") or main_log_name(row["spec"]))

    def stream(self, file: str | None = None, follow: bool = True) -> Iterator[str]:
        """Lines of a run file like `tail -f`: waits for it to appear, ends when the run ends.

        A run that is requeued is followed into its new attempt: after the last lines of the
        abandoned one, one line says so ("--- attempt 2 (requeued: <why>) ---") and the new
        attempt's file follows from its start (the abandoned one's stays in attempt-<n>/)."""
        return follow_lines(self, file or self.main_log(), follow, attempt=self.attempt)

    def wait_for_completion(self, show_output: bool = False, timeout: float | None = None,
                            raise_on_error: bool = True, out: TextIO | None = None) -> dict[str, Any]:
        """Block until the run ends; Ctrl-C detaches (the run goes on), it never cancels."""
        out = out or sys.stdout
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if show_output:
                print(f"RunId: {self.id}", file=out)
                print(f"Streaming {self.main_log()}", file=out)
                print("=" * 40, file=out, flush=True)
                for line in follow_lines(self, self.main_log(), True, deadline):
                    print(line, file=out, flush=True)
                    if deadline is not None and time.monotonic() > deadline:
                        raise self._wait_timeout(timeout)
            # the engine's write of a status wakes us; a busy history, once per 5 ms at most; not
            # the engine's lock, which every ensure_engine opens (a wake-up would beget the next)
            with closing(FolderEvents(ignore=("engine.",), settle=0.005)) as events:
                while self.status not in TERMINAL_STATUSES:
                    if deadline is not None and time.monotonic() > deadline:
                        raise self._wait_timeout(timeout)
                    ensure_engine(self.workspace.path)
                    events.watch([str(self.workspace.paths.history_db.parent)])  # history.db-wal
                    events.wait(POLL_SECONDS * 2)
        except KeyboardInterrupt:
            print(f"\nDetached from run {self.id}; it goes on. Follow it again with "
                  f"ws.get_run({self.id!r}).", file=out, flush=True)
            return self.get_details()
        details = self.get_details()
        if show_output:
            print_summary(self.id, details, out)
        if raise_on_error and details["status"] in ("Failed", "Canceled"):
            error = details.get("error") or {}
            raise RunFailed(self, f"run {self.id} {details['status']}: {error.get('message', '')}",
                            error.get("last_lines", [])) from None
        return details

    def _wait_timeout(self, timeout: float | None) -> WaitTimeout:
        """The run did not end in time; a queued run's text says what it waits for."""
        row = self._row()
        text = f"run {self.id} still {row['status']} after {timeout} s"
        waiting = row["properties"].get("waiting")
        if row["status"] == "Queued" and waiting:
            text += f": {waiting}"
        return WaitTimeout(text)

    # -- files -----------------------------------------------------------------------------------------
    def file_path(self, name: str, must_exist: bool = True) -> Path:
        """Where a run file is in the workspace (FileNotInRun names the files it has)."""
        base = self.files_dir
        path = (base / name).resolve()
        if base.resolve() not in path.parents and path != base.resolve():
            raise FileNotInRun(f"{name!r} is not a file of run {self.id}")
        if must_exist and not path.is_file():
            names = self.get_file_names()
            raise FileNotInRun(f"run {self.id} has no file {name!r} (it has: {', '.join(names[:20])}"
                               f"{' ...' if len(names) > 20 else ''})")
        return path

    def get_file_names(self) -> list[str]:
        base = self.files_dir
        if not base.exists():
            return []
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

    def download_file(self, name: str, output_file_path: str | Path | None = None) -> Path:
        """Copy one run file to output_file_path (a file or a folder; default: its name here)."""
        return copy_run_file(self.file_path(name), name, output_file_path)

    def download_files(self, prefix: str = "", output_directory: str | Path | None = None) -> list[Path]:
        out_dir = Path(output_directory) if output_directory is not None else Path.cwd()
        got: list[Path] = []
        for name in self.get_file_names():
            if name.startswith(prefix):
                got.append(self.download_file(name, out_dir / name))
        return got

    # -- metrics ---------------------------------------------------------------------------------------
    def get_metrics(self, name: str | None = None, recursive: bool = False,
                    attempt: int | None = None) -> dict[str, Any]:
        """The metrics of the run's current attempt (a requeued run starts a new attempt; an
        earlier one's stay readable with attempt=0, 1, ...; with recursive, for each run)."""
        if recursive:
            result = {self.id: self.get_metrics(name, attempt=attempt)}
            for child in self.get_children(recursive=True):
                result[child.id] = child.get_metrics(name, attempt=attempt)
            return result
        self._revive(self.workspace.history.run_status(self.id))
        if attempt is None:
            attempt = self.attempt
        return summarize_metrics(self.workspace.history.metric_rows([self.id], name, attempt))

    # -- control ---------------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the engine to stop the run (TERM, grace period, KILL); returns at once."""
        row = self._row()
        if row["status"] in TERMINAL_STATUSES:
            return
        if row["cluster"] is None:  # logged from a notebook or a job: no process to stop
            self.workspace.history.set_status(self.id, "Canceled", "canceled", error={"message": "canceled"})
            return
        self.workspace.history.add_intent("cancel", self.id)
        ensure_engine(self.workspace.path)
        wake_engine(self.workspace.path)

    def submit_child(self, spec: JobSpec, tags: dict[str, str] | None = None,
                     cluster: str | None = None, *, extra_files: dict[str, bytes] | None = None,
                     max_snapshot_bytes: int | None = None, max_snapshot_files: int | None = None,
                     progress: Progress | None = None) -> Run:
        """Submit a run filed under this one (same experiment; same cluster unless given)."""
        from .submission import submit
        row = self._row()
        run_id = submit(self.workspace, row["experiment"], spec,
                        cluster=cluster or row["cluster"] or "local", tags=tags, parent_id=self.id,
                        extra_files=extra_files, max_snapshot_bytes=max_snapshot_bytes,
                        max_snapshot_files=max_snapshot_files, progress=progress)
        return Run(self.workspace, run_id)

    def submit_children(self, specs: list[JobSpec], tags: dict[str, str] | None = None,
                        cluster: str | None = None) -> list[Run]:
        """Submit many runs filed under this one at once (docs/schedules.md).

        Parameters
        ----------
        specs: the children's JobSpecs; every one is checked before any is stored, one snapshot
            is taken per source folder, and all rows are inserted in one transaction.
        tags: tags of every child; cluster: where they run (default: this run's cluster).
        """
        from .submission import submit_many
        row = self._row()
        ids = submit_many(self.workspace, row["experiment"], specs, cluster=cluster or row["cluster"] or "local",
                          tags=tags, parent_id=self.id)
        return [Run(self.workspace, run_id) for run_id in ids]

    def failed_batches(self) -> list[dict[str, Any]]:
        """A parallel run's mini-batches that failed for good: batch, items, attempts, error."""
        from .parallel.client import failed_batches
        return failed_batches(self.files_dir)

    def retry_failed(self, cluster: str | None = None) -> Run:
        """A new parallel run over the items of this one's failed mini-batches (same experiment)."""
        from .parallel.client import retry_spec
        from .submission import submit
        row = self._row()
        spec, extra = retry_spec(row["spec"], self.failed_batches())
        run_id = submit(self.workspace, row["experiment"], spec, cluster=cluster or row["cluster"] or "local",
                        tags={**row["tags"], "retry_of": self.id}, extra_files=extra)
        return Run(self.workspace, run_id)

    def get_children(self, recursive: bool = False) -> list[Run]:
        """Child runs, oldest first (with recursive=True, their children after them)."""
        children = list(reversed(self.workspace.runs(parent=self.id)))
        if recursive:
            for child in list(children):
                children.extend(child.get_children(recursive=True))
        return children

    def delete(self) -> None:
        """Remove an ended run from the workspace: its history rows, metrics and files.

        Refuses (RunActive) while the run is queued or running: cancel it and wait first.
        Child runs are kept; they no longer find their parent.
        """
        status = self.workspace.history.delete_run(self.id)
        if status is None:
            raise RunNotFound(f"run {self.id!r} not found")
        if status not in TERMINAL_STATUSES:
            raise RunActive(self.id, status, f"run {self.id} is {status}; terminate it first "
                            f"(run.cancel(), then wait for it to end)")
        self.workspace.secrets.delete("runs", self.id)
        shutil.rmtree(self.workspace.paths.run_dir(self.id), ignore_errors=True)

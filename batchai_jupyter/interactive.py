"""InteractiveRun: `exp.start_logging()` — a run logged from a notebook, with no job behind it.

Its row is in the run history (status Running, no cluster) from the start; log_* write straight
to history.db and files straight to runs/<id>/files/, so it reads like any run (get_metrics,
RunDetails, exp.get_runs()). complete(), fail() and cancel() end it; nothing else does, so a
notebook that forgets complete() leaves it Running, as Azure ML's did.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .history import ACTIVE_STATUSES
from .run import Run
from .run_context.channel import RUN_KIND
from .run_context.logging_api import MetricsLogger
from .run_ids import child_run_id, new_run_id

if TYPE_CHECKING:
    from typing_extensions import Self

    from .workspace import Experiment

INTERACTIVE_KIND = "interactive"


class InteractiveRun(MetricsLogger, Run):
    """A Run whose logging calls write to the run history at once (Azure ML's start_logging)."""

    def _emit(self, name: str, kind: str, value: Any, step: int | None = None) -> None:
        self.workspace.history.add_metrics(self.id, [{"name": name, "kind": kind, "value": value,
                                                      "step": step, "ts": time.time()}])

    def _file_target(self, rel: str) -> str | None:
        return str(self.files_dir / rel)

    # -- the end -------------------------------------------------------------------------------
    def _end(self, status: str, error: dict[str, Any] | None = None) -> None:
        if self.workspace.history.run_status(self.id) in ACTIVE_STATUSES:
            self.workspace.history.set_status(self.id, status, (error or {}).get("message"), error=error)

    def complete(self, _set_status: bool = True) -> None:
        """End the run Completed."""
        self._end("Completed")

    def fail(self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True) -> None:
        """End the run Failed with this error (a message or an exception)."""
        message = (f"{type(error_details).__name__}: {error_details}" if isinstance(error_details, BaseException)
                   else str(error_details or "failed"))
        error: dict[str, Any] = {"message": message}
        if error_code:
            error["code"] = str(error_code)
        self._end("Failed", error)

    def cancel(self) -> None:
        self._end("Canceled", {"message": "canceled"})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.complete() if exc is None else self.fail(exc)

    # -- children --------------------------------------------------------------------------------
    def child_run(self, name: str | None = None, run_id: str | None = None,
                  outputs: str | None = None) -> InteractiveRun:
        """A child run logged from here too."""
        row = self.row()
        return start(self.workspace, row["experiment"], parent_id=self.id, name=name, run_id=run_id)

    def create_children(self, count: int | None = None, tag_key: str | None = None,
                        tag_values: list[str] | None = None) -> list[InteractiveRun]:
        if count is None and tag_values is None:
            raise SpecError("count", "give count= or tag_key= and tag_values=")
        if tag_values is not None and tag_key is None:
            raise SpecError("tag_key", "tag_values needs a tag_key")
        values: list[str | None] = list(tag_values) if tag_values is not None else [None] * int(count or 0)
        children = [self.child_run() for _ in values]
        for child, value in zip(children, values):
            if tag_key is not None and value is not None:
                child.tag(tag_key, value)
        return children


def start(workspace: Any, experiment: str, snapshot_directory: str | os.PathLike[str] | None = None,
          parent_id: str | None = None, name: str | None = None, run_id: str | None = None) -> InteractiveRun:
    """Record a Running run with no cluster (and a snapshot of `snapshot_directory`, if given)."""
    run_id = run_id or (child_run_id(parent_id) if parent_id else new_run_id(experiment))
    snapshot_id = None
    props: dict[str, Any] = {RUN_KIND: INTERACTIVE_KIND}
    if name:
        props["display_name"] = name
    if snapshot_directory is not None:
        if not Path(snapshot_directory).is_dir():
            raise SpecError("snapshot_directory", f"no folder {os.fspath(snapshot_directory)!r}")
        limits = workspace.snapshot_limits
        snapshot = workspace.store.take(snapshot_directory, max_bytes=limits["max_bytes"],
                                        max_files=limits["max_files"], exclude=(workspace.path,))
        snapshot_id = snapshot.id
        props.update(snapshot_files=len(snapshot.files), snapshot_bytes=snapshot.total_bytes)
    spec = {"source_directory": os.fspath(snapshot_directory)} if snapshot_directory is not None else {}
    workspace.history.insert_run(run_id, experiment, None, spec, snapshot_id, {}, 1, parent_id=parent_id,
                                 properties=props, status="Running")
    workspace.history.update_run(run_id, started=time.time())
    return InteractiveRun(workspace, run_id)


def start_logging(experiment: Experiment, snapshot_directory: str | os.PathLike[str] | None = None,
                  outputs: str | None = None, **_azureml_options: Any) -> InteractiveRun:
    return start(experiment.workspace, experiment.name, snapshot_directory)

"""JobRun: Run.get_context() inside a job — Azure ML v1's Run, as the job's own process sees it;
RelatedRun: another run of its workspace (its parent, the parent's other children), read only,
except that a job may cancel the runs above it (a pipeline step's `run.parent.cancel()`).

Writes go to the engine as records on the job's channel (channel.py); reads come from the
workspace, read-only, where the node can see it (reader.py), else from what this object
recorded itself. Outside a job the same calls print, so a script runs unchanged on a laptop.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from ..errors import SpecError
from ..run_ids import child_run_id
from .channel import (
    Channel,
    ChildRecord,
    FileRecord,
    MetricRecord,
    ModelRecord,
    OpRecord,
    PropertiesRecord,
    StatusRecord,
    TagsRecord,
    child_files_dir,
    now,
    process_rank,
)
from .job_files import JobFiles
from .reader import WorkspaceView, details, run_dir_of

if TYPE_CHECKING:
    from typing_extensions import Self

    from ..records import RunRow



@dataclass
class Recorded:
    """What this process recorded of a run: the answer to reads where the workspace is unseen."""

    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    status: str = "Running"
    children: list[JobRun] = field(default_factory=list)


@dataclass(frozen=True)
class JobExperiment:
    """run.experiment inside a job: its name, and the workspace where the node sees it."""

    name: str | None
    workspace_path: Path | None = None

    @property
    def workspace(self) -> Any:
        if self.workspace_path is None:
            raise FileNotFoundError("this node cannot see the run's workspace")
        import batchai_jupyter as bai
        return bai.Workspace(self.workspace_path)


class JobRun(JobFiles):
    """The current run inside a job (or an offline stand-in that prints)."""

    def __init__(self, run_id: str | None, experiment: str | None, metrics_file: str | None,
                 artifacts_dir: str | None, parent: JobRun | None = None):
        self.id = run_id or "OfflineRun"
        self.experiment_name = experiment
        self._metrics_file = metrics_file
        self._artifacts = artifacts_dir
        self._parent = parent
        self.offline = metrics_file is None
        self._channel: Channel | None = parent._channel if parent is not None else (
            Channel(metrics_file) if metrics_file else None)
        self._recorded = Recorded()
        self._view: WorkspaceView | None | bool = False  # the root run's: see _seen()

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, offline={self.offline})"

    @classmethod
    def from_environment(cls) -> JobRun:
        """The job's run; outside a job an OfflineRun (Azure ML scripts test `type(run) == _OfflineRun`)."""
        metrics = os.environ.get("BATCHAI_METRICS_FILE")
        make = cls if metrics else OfflineRun
        return make(os.environ.get("BATCHAI_RUN_ID"), os.environ.get("BATCHAI_EXPERIMENT"), metrics,
                    os.environ.get("BATCHAI_ARTIFACTS_DIR"))

    @classmethod
    def get_context(cls, allow_offline: bool = True) -> JobRun:
        """Azure ML's Run.get_context(): the run of this job; outside one an offline stand-in."""
        ctx = cls.from_environment()
        if ctx.offline and not allow_offline:
            raise RuntimeError("not inside a batchai job (BATCHAI_RUN_ID is not set)")
        return ctx

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, record: MetricRecord | TagsRecord | PropertiesRecord | StatusRecord | ChildRecord
              | ModelRecord | FileRecord) -> None:
        if self._channel is not None:
            self._channel.write(record)

    def _emit(self, name: str, kind: str, value: Any, step: int | None = None) -> None:
        record: MetricRecord = {"name": name, "kind": kind, "value": value, "step": step, "ts": now()}
        if self._parent is not None:
            record["run_id"] = self.id
        rank = process_rank(os.environ)
        if rank is not None:
            record["rank"] = rank
        if self._channel is None or self._seen() is None:  # reads will answer from these
            self._recorded.metrics.append(dict(record))
        if self._channel is None:
            print(f"[metric] {name} = {value!r}" + (f" (step {step})" if step is not None else ""))
            return
        self._send(record)

    @property
    def _run_dir(self) -> str | None:
        return run_dir_of(self._metrics_file)

    def _file_target(self, rel: str) -> str | None:
        if self.offline or self._artifacts is None:
            return None
        if self._parent is None:
            return os.path.join(self._artifacts, rel)
        return os.path.join(child_files_dir(str(self._run_dir), self.id), rel)

    def _file_done(self, rel: str) -> None:
        if self._parent is not None and self._run_dir is not None:
            source = os.path.relpath(os.path.join(child_files_dir(self._run_dir, self.id), rel), self._run_dir)
            self._send({"op": "file", "run_id": self.id, "name": rel, "source": source, "ts": now()})

    def _seen(self) -> WorkspaceView | None:
        """The job's workspace where this node sees it (looked up once per job run object)."""
        root = self._root()
        if root._view is False:
            root._view = None if root.offline else WorkspaceView.find(root._run_dir, root.id, root._channel)
        return root._view if isinstance(root._view, WorkspaceView) else None

    def _workspace(self) -> WorkspaceView | None:
        """The workspace, read-only and caught up with this job's records (None: not seen)."""
        view = self._seen()
        if view is not None:
            view.catch_up(self._root().id)
        return view

    def _root(self) -> JobRun:
        return self if self._parent is None else self._parent._root()

    def _row(self) -> RunRow | None:
        view = self._workspace()
        return view.row(self.id) if view is not None else None

    # -- tags and properties -------------------------------------------------------------------
    def tag(self, key: str, value: Any = None) -> None:
        """Set one tag (value None: a tag without a value, as Azure ML's)."""
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        if not isinstance(tags, dict) or not all(isinstance(k, str) and k for k in tags):
            raise SpecError("tags", f"a dict of non-empty string keys is needed, got {tags!r}")
        clean = {k: str(v) for k, v in tags.items()}
        self._recorded.tags.update(clean)
        if self._channel is None:
            print(f"[tags] {clean}")
        self._send({"op": "tags", "run_id": self.id, "tags": clean, "ts": now()})

    def get_tags(self) -> dict[str, str]:
        row = self._row()
        return dict(row["tags"]) if row is not None else dict(self._recorded.tags)

    def add_properties(self, properties: dict[str, Any]) -> None:
        """Add properties (immutable, as Azure ML's: a key that has a value keeps it)."""
        if not isinstance(properties, dict) or not all(isinstance(k, str) and k for k in properties):
            raise SpecError("properties", f"a dict of non-empty string keys is needed, got {properties!r}")
        clean = {k: str(v) for k, v in properties.items()}
        for key, value in clean.items():
            if self._recorded.properties.get(key, value) != value:
                raise SpecError(key, f"property {key!r} is already {self._recorded.properties[key]!r}; "
                                "properties cannot be changed (use a tag)")
            self._recorded.properties[key] = value
        self._send({"op": "properties", "run_id": self.id, "properties": clean, "ts": now()})

    def add_property(self, key: str, value: Any) -> None:
        self.add_properties({key: value})

    def get_properties(self) -> dict[str, str]:
        row = self._row()
        if row is None:
            return dict(self._recorded.properties)
        return dict(details(row)["properties"])

    # -- status --------------------------------------------------------------------------------
    def _request(self, status: str, error: dict[str, Any] | None = None) -> None:
        self._recorded.status = status
        if self._channel is None:
            print(f"[status] {status}")
        self._send({"op": "status", "run_id": self.id, "status": status, "error": error, "ts": now()})

    def complete(self, _set_status: bool = True) -> None:
        """Mark the run Completed (a child at once; the job's own run when its processes end)."""
        self._request("Completed")

    def fail(self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True) -> None:
        """Mark the run Failed with this error (the job's own run ends Failed even if it exits 0)."""
        message = str(error_details) if error_details is not None else "failed by the run itself"
        error: dict[str, Any] = {"message": message}
        if isinstance(error_details, BaseException):
            error["message"] = f"{type(error_details).__name__}: {error_details}"
        if error_code:
            error["code"] = str(error_code)
        self._request("Failed", error)

    def cancel(self) -> None:
        """Cancel the run (the job's own run: its processes are stopped, as by run.cancel())."""
        self._request("Canceled")

    def get_status(self) -> str:
        row = self._row()
        return str(row["status"]) if row is not None else self._recorded.status

    def get_details(self) -> dict[str, Any]:
        row = self._row()
        if row is not None:
            return details(row)
        return {"runId": self.id, "experiment": self.experiment_name, "status": self._recorded.status,
                "parentRunId": self._parent.id if self._parent else None, "tags": dict(self._recorded.tags),
                "properties": dict(self._recorded.properties)}

    def get_metrics(self, name: str | None = None, recursive: bool = False) -> dict[str, Any]:
        """The run's metrics in Azure ML's shapes (with recursive: {run id: metrics} of its tree)."""
        if recursive:
            result = {self.id: self.get_metrics(name)}
            for child in self.get_children(recursive=True):
                result[child.id] = child.get_metrics(name)
            return result
        view = self._workspace()
        if view is not None:
            return view.metrics(self.id, name)
        from ..view.metrics import summarize_metrics
        return summarize_metrics(r for r in self._recorded.metrics if name is None or r["name"] == name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """`with run.child_run() as child:` completes it, or fails it with the exception."""
        if exc is None:
            self.complete()
        else:
            self.fail(exc)

    # -- relatives -----------------------------------------------------------------------------
    @property
    def experiment(self) -> JobExperiment:
        view = self._seen()
        return JobExperiment(self.experiment_name, view.root if view is not None else None)

    @property
    def parent(self) -> JobRun | None:
        if self._parent is not None:
            return self._parent
        row = self._row()
        if row is None or not row["parent_id"]:
            return None
        if row["parent_id"] == self._root().id:
            return self._root()
        return RelatedRun(self, row["parent_id"])

    def child_run(self, name: str | None = None, run_id: str | None = None, outputs: str | None = None) -> JobRun:
        """A child run logged into from this job (no process of its own): it ends Completed with
        the job unless completed, failed or canceled earlier."""
        if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
            raise SpecError("run_id", f"a non-empty string is needed, got {run_id!r}")
        child_id = run_id or child_run_id(self.id)
        child = JobRun(child_id, self.experiment_name, self._metrics_file, self._artifacts, parent=self)
        child.offline = self.offline
        self._recorded.children.append(child)
        if self._channel is None:
            print(f"[child run] {child_id}")
        self._send({"op": "child", "run_id": child_id, "parent_id": self.id, "name": name,
                    "tags": {}, "ts": now()})
        return child

    def create_children(self, count: int | None = None, tag_key: str | None = None,
                        tag_values: list[str] | None = None) -> list[JobRun]:
        """Several child runs at once: `count` of them, or one per tag value (tagged tag_key=value)."""
        if tag_values is not None and tag_key is None:
            raise SpecError("tag_key", "tag_values needs a tag_key")
        if count is None and tag_values is None:
            raise SpecError("count", "give count= or tag_key= and tag_values=")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise SpecError("count", f"a positive integer is needed, got {count!r}")
        n = len(tag_values) if tag_values is not None else int(count or 0)
        children = [self.child_run() for _ in range(n)]
        if tag_key is not None and tag_values is not None:
            for child, value in zip(children, tag_values):
                child.tag(tag_key, value)
        return children

    def get_children(self, recursive: bool = False) -> list[JobRun]:
        view = self._workspace()
        if view is None:
            found = list(self._recorded.children)
        else:
            mine = {c.id: c for c in self._recorded.children}
            found = [mine.get(r["id"]) or RelatedRun(self, r["id"]) for r in view.children(self.id)]
        if recursive:
            for child in list(found):
                found.extend(child.get_children(recursive=True))
        return found


class OfflineRun(JobRun):
    """Run.get_context() outside a job (Azure ML's _OfflineRun): every call prints."""


#: what a refused write to a RelatedRun was, and what a job may do with such a run instead
_VERBS = {"tags": "setting tags", "properties": "adding properties", "child": "making a child run",
          "model": "registering a model", "file": "adding a file"}
_ONLY = ["get_tags()", "get_metrics()", "get_status()", "get_details()", "get_children()",
         "download_file()", "cancel() (of a run above the job)"]


class RelatedRun(JobRun):
    """A run of the job's workspace that is neither the job's own nor one it made."""

    def __init__(self, job: JobRun, run_id: str):
        super().__init__(run_id, job.experiment_name, None, None)
        self._job = job._root()
        self.offline = False
        self._channel = self._job._channel

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, seen from job {self._job.id!r})"

    def _root(self) -> JobRun:
        return self._job  # reads wait for the job's own records, through the job's view

    def _refuse(self, what: str) -> SpecError:
        return SpecError("run", f"{what} of run {self.id} from job {self._job.id}: a job writes to its "
                         "own run (Run.get_context()) and the child runs it made", _ONLY)

    def _above(self) -> bool:
        """Is this run the job's parent, or above it (the engine lets a job cancel those)?"""
        view = self._seen()
        seen: set[str] = set()
        row = view.row(self._job.id) if view is not None else None
        while row is not None and row["parent_id"] and row["parent_id"] not in seen:
            seen.add(row["parent_id"])
            row = view.row(row["parent_id"]) if view is not None else None
        return self.id in seen

    def _send(self, record: MetricRecord | OpRecord) -> None:
        if record.get("op") == "status" and record.get("status") == "Canceled" and self._above():
            super()._send(record)
            return
        op = str(record.get("op"))
        raise self._refuse(_VERBS.get(op, op) if op != "status" else f"asking for status {record.get('status')}")

    def _emit(self, name: str, kind: str, value: Any, step: int | None = None) -> None:
        raise self._refuse(f"logging {name!r}")

    def _file_target(self, rel: str) -> str | None:
        return None  # its files are read from the workspace only

    def upload_file(self, name: str, path_or_stream: str | os.PathLike[str] | IO[bytes]) -> str:
        raise self._refuse(f"uploading {name!r}")

    def log_image(self, name: str, path: str | os.PathLike[str] | None = None, plot: Any = None,
                  description: str = "") -> None:
        raise self._refuse(f"logging image {name!r}")

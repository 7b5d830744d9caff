"""Runs: details, submit (idempotent by key), cancel, rerun and delete, as JSON dicts.

Calls are blocking (the Service runs them in its pool); they go through the public Python API
(Experiment.submit, Run.cancel, Run.delete) and the history's named queries only.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..engine.control import ensure_engine, wake_engine
from ..errors import RunNotFound, SpecError
from ..history import TERMINAL_STATUSES
from ..records import NewRun, RunRow
from ..run import Run
from ..run_ids import new_run_id
from ..spec import JobSpec
from ..view.children import read_sweep
from ..view.reader import log_file_names
from ..workspace import Workspace
from .errors import conflict, invalid
from .query import run_json

#: the tag a POST /runs with an idempotency key leaves on its run (looked up before submitting)
IDEMPOTENCY_TAG = "idempotency_key"
SNAPSHOT_PROPERTIES = ("snapshot_files", "snapshot_bytes")
#: the largest script GET /runs/{id} sends back as `job.script_source`
CELL_SOURCE_BYTES = 1 << 20


class RunService:
    """The run routes of one workspace (a light object: made per request)."""

    def __init__(self, workspace: Workspace, root_dir: Path, submit_lock: threading.Lock):
        self.ws = workspace
        self.root_dir = root_dir
        self.submit_lock = submit_lock  # one keyed submit at a time: the same key twice is one run

    def row(self, run_id: str) -> RunRow:
        row = self.ws.history.run_row(run_id)
        if row is None:
            raise RunNotFound(f"run {run_id!r} not found in workspace {self.ws.path}")
        return row

    def json(self, run_id: str) -> dict[str, Any]:
        row = self.row(run_id)
        return run_json(row, self.ws.history.child_counts([run_id]).get(run_id, 0))

    def details(self, run_id: str) -> dict[str, Any]:
        """The row, run.get_details(), the run's file names and its log files."""
        body = self.json(run_id)
        run = Run(self.ws, run_id)
        names = run.get_file_names()
        body.update(details=run.get_details(), files=names, streams=log_file_names(run.files_dir))
        body["job"] = self._job(self.row(run_id))
        if body["children"]:
            body["sweep"] = self._sweep(run_id)
        return body

    def _sweep(self, run_id: str) -> dict[str, Any]:
        """The children's primary metric as the notebook's children table picks it (the first
        scalar metric every child logs), its goal, the best child and each child's last value."""
        sweep = read_sweep(self.ws.history, run_id)
        return {"primary_metric": sweep.primary, "goal": sweep.goal, "best": sweep.best,
                "values": {r["id"]: r["metric"] for r in sweep.rows if sweep.primary}}

    def _job(self, row: RunRow) -> dict[str, Any]:
        """What a clone into a new %%batchai_job cell needs: the image the spec names and the
        text of its script as the snapshot holds it (the cell body of a cell-magic run), or null
        when the snapshot has no such file or it is not text of at most 1 MiB."""
        spec = row["spec"]
        script, text = spec.get("script"), None
        if script and row["snapshot"] and not spec.get("command"):
            entry = self.ws.store.manifest(row["snapshot"])["files"].get(script)
            if entry is not None and entry[1] <= CELL_SOURCE_BYTES:
                try:
                    text = self.ws.store.object_path(entry[0]).read_bytes().decode("utf-8")
                except (OSError, UnicodeDecodeError):
                    text = None
        return {"image": spec.get("image"), "image_pull": spec.get("image_pull"), "script_source": text,
                "source_in_root": self._in_root(spec.get("source_directory"))}

    def _in_root(self, source: str | None) -> str | None:
        """The snapshotted folder relative to root_dir (`.` for root_dir itself, as the Lab file
        browser names folders), or null when it lies outside: a cell cloned into a notebook of
        that folder then needs no --source."""
        if not source:
            return None
        try:
            rel = Path(source).resolve().relative_to(self.root_dir.resolve())
        except (ValueError, OSError):
            return None
        return rel.as_posix()

    def events(self, run_id: str) -> dict[str, Any]:
        self.row(run_id)
        return {"events": [dict(e) for e in self.ws.history.events(run_id)]}

    # -- writes --------------------------------------------------------------------------------
    def submit(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """POST /runs -> (the run's row, True when this call made it)."""
        experiment = body.get("experiment")
        if not isinstance(experiment, str) or not experiment:
            raise invalid("experiment", "must be a non-empty string", "an experiment name")
        cluster = body.get("cluster", "local")
        if not isinstance(cluster, str) or not cluster:
            raise invalid("cluster", "must be a cluster name", [c.name for c in self.ws.clusters()])
        tags = body.get("tags") or {}
        if not isinstance(tags, Mapping):
            raise invalid("tags", "must be an object of strings", '{"key": "value"}')
        key = body.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not key or len(key) > 200):
            raise invalid("idempotency_key", "must be a non-empty string of at most 200 characters")
        spec = self._spec(body.get("spec"))
        if key is None:
            return self._submit(experiment, spec, cluster, dict(tags)), True
        with self.submit_lock:
            found = self.ws.history.run_rows(tags={IDEMPOTENCY_TAG: key}, limit=1)
            if found:
                return self.json(found[0]["id"]), False
            return self._submit(experiment, spec, cluster, {**tags, IDEMPOTENCY_TAG: key}), True

    def _spec(self, data: object) -> JobSpec:
        if not isinstance(data, Mapping):
            raise invalid("spec", "must be an object with JobSpec fields", '{"command": "python train.py", ...}')
        try:
            spec = JobSpec.from_dict(data)
        except TypeError as exc:  # a field JobSpec's constructor refuses
            raise invalid("spec", str(exc)) from None
        source = Path(spec.source_directory).expanduser()
        if not source.is_absolute():  # relative to the folder JupyterLab shows, not our cwd
            spec.source_directory = str(self.root_dir / source)
        return spec

    def _submit(self, experiment: str, spec: JobSpec, cluster: str, tags: dict[str, Any]) -> dict[str, Any]:
        run = self.ws.experiment(experiment).submit(spec, cluster=cluster, tags={k: str(v) for k, v in tags.items()})
        return self.json(run.id)

    def cancel(self, run_id: str) -> dict[str, Any]:
        row = self.row(run_id)
        if row["status"] in TERMINAL_STATUSES:
            raise conflict(f"run {run_id} is {row['status']}: there is nothing to cancel",
                           "only a queued or running run can be canceled")
        Run(self.ws, run_id).cancel()
        return self.json(run_id)

    def rerun(self, run_id: str) -> dict[str, Any]:
        """A new run of the same stored spec and snapshot, in the same experiment and cluster."""
        row = self.row(run_id)
        if row["cluster"] is None:
            raise conflict(f"run {run_id} was logged from a notebook, not submitted: it has no job to run again",
                           "submit the code as a job")
        spec = JobSpec.from_dict(row["spec"])
        new_id = new_run_id(row["experiment"])
        secrets = self.ws.secrets.get("runs", run_id)
        if spec.secrets and not secrets:
            raise SpecError("secrets", f"run {run_id}'s secret values are gone", "submit the job again")
        if secrets:
            self.ws.secrets.put("runs", new_id, secrets)
        tags = {k: v for k, v in row["tags"].items() if k != IDEMPOTENCY_TAG}
        props = {k: row["properties"][k] for k in SNAPSHOT_PROPERTIES if k in row["properties"]}
        self.ws.history.insert_runs([NewRun(
            id=new_id, experiment=row["experiment"], cluster=row["cluster"], spec=row["spec"],
            snapshot=row["snapshot"], tags={**tags, "rerun_of": run_id}, priority=row["priority"],
            parent_id=row["parent_id"], properties=props, status="Queued" if spec.has_process else "Running")])
        ensure_engine(self.ws.path)
        wake_engine(self.ws.path)
        return self.json(new_id)

    def delete(self, run_id: str) -> None:
        Run(self.ws, run_id).delete()

"""JobRecords: what a job asks of its run history through its channel (run_context/channel.py)
— tags, properties, complete/fail/cancel, child runs, models, files of child runs — applied by
the engine, the one writer of run state.

Each op is applied before the tail offset that covers it moves, and each is idempotent (tags
and properties merge, a child run or a model is made once per id or token), so an engine that
restarts between the two repeats an op without doubling it. A job may change only its own run
and the child runs it made, and cancel the runs above it (Azure ML's run.parent.cancel());
anything else is dropped with a line in the engine log.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from ..compute.transport import Transport
from ..history import ACTIVE_STATUSES, RunHistory
from ..layout import WorkspacePaths
from ..model_registry import ModelRegistry
from ..node.paths import RunPaths
from ..run_context.channel import REQUESTABLE, RUN_KIND, USER_PROPERTIES
from ..run_context.logging_api import check_rel

log = logging.getLogger("batchai_jupyter.engine")
#: the run property where fail() of a job's own run waits for the end of its processes
REQUESTED_STATUS = "requested_status"
CHILD_KIND = "child"


class JobRecords:
    """The ops of one run's channel."""

    def __init__(self, history: RunHistory, workspace: WorkspacePaths, run_id: str):
        self.history = history
        self.workspace = workspace
        self.run_id = run_id
        self._children: set[str] | None = None
        self._ancestors: set[str] | None = None

    def children(self) -> set[str]:
        """Ids of the runs this job made (and their children), read once, then kept up to date."""
        if self._children is None:
            found: set[str] = set()
            todo = [self.run_id]
            while todo:
                for row in self.history.run_rows(parent_id=todo.pop()):
                    if row["properties"].get(RUN_KIND) == CHILD_KIND:
                        found.add(row["id"])
                        todo.append(row["id"])
            self._children = found
        return self._children

    def allowed(self, run_id: object) -> bool:
        return run_id is None or run_id == self.run_id or run_id in self.children()

    def ancestors(self) -> set[str]:
        """The runs above this one (its parent, the parent's parent), read once."""
        if self._ancestors is None:
            found: set[str] = set()
            row = self.history.run_row(self.run_id)
            while row is not None and row["parent_id"] and row["parent_id"] not in found:
                found.add(row["parent_id"])
                row = self.history.run_row(row["parent_id"])
            self._ancestors = found
        return self._ancestors

    def _cancels_ancestor(self, op: dict[str, Any]) -> bool:
        return op.get("op") == "status" and op.get("status") == "Canceled" and \
            op.get("run_id") in self.ancestors()

    def apply(self, ops: list[dict[str, Any]], transport: Transport, paths: RunPaths) -> None:
        handlers: dict[str, Callable[[dict[str, Any], Transport, RunPaths], None]] = {
            "tags": self._tags, "properties": self._properties, "status": self._status,
            "child": self._child, "model": self._model, "file": self._file}
        for op in ops:
            handler = handlers.get(str(op.get("op")))
            target = op.get("parent_id") if op.get("op") == "child" else op.get("run_id")
            if handler is None or not (self.allowed(target) or self._cancels_ancestor(op)):
                log.warning("run %s: record %r dropped (unknown, or not this job's run)", self.run_id, op.get("op"))
                continue
            try:
                handler(op, transport, paths)
            except Exception as exc:  # noqa: BLE001 -- one bad record must not stop the run's tail
                log.warning("run %s: record %r not applied: %s", self.run_id, op.get("op"), exc)

    # -- the ops ---------------------------------------------------------------------------------
    def _tags(self, op: dict[str, Any], _t: Transport, _p: RunPaths) -> None:
        row = self.history.run_row(op["run_id"])
        if row is not None:
            tags = {**row["tags"], **{str(k): str(v) for k, v in dict(op["tags"]).items()}}
            self.history.update_run(row["id"], tags=tags)

    def _properties(self, op: dict[str, Any], _t: Transport, _p: RunPaths) -> None:
        row = self.history.run_row(op["run_id"])
        if row is None:
            return
        props = dict(row["properties"])
        user = dict(props.get(USER_PROPERTIES) or {})
        for key, value in dict(op["properties"]).items():
            user.setdefault(str(key), str(value))  # immutable once set, as in Azure ML
        props[USER_PROPERTIES] = user
        self.history.update_run(row["id"], properties=props)

    def _status(self, op: dict[str, Any], _t: Transport, _p: RunPaths) -> None:
        status, run_id = str(op["status"]), str(op["run_id"])
        if status not in REQUESTABLE:
            raise ValueError(f"status {status!r} cannot be asked for (valid: {', '.join(REQUESTABLE)})")
        error = op.get("error") or None
        if run_id in self.ancestors():  # only a cancel gets here: the parent's, its children's too
            self.history.add_intent("cancel", run_id)
            return
        if run_id != self.run_id:  # a child run: it has no process, the request is its end
            if self.history.run_status(run_id) in ACTIVE_STATUSES:
                self.history.set_status(run_id, status, (error or {}).get("message"),
                                        error=error if status != "Completed" else None)
            return
        if status == "Canceled":
            self.history.add_intent("cancel", run_id)
        elif status == "Failed":
            row = self.history.run_row(run_id)
            if row is not None:
                props = dict(row["properties"], **{REQUESTED_STATUS: {"status": status, "error": error}})
                self.history.update_run(run_id, properties=props)

    def _child(self, op: dict[str, Any], _t: Transport, _p: RunPaths) -> None:
        child_id = str(op["run_id"])
        if not child_id or self.history.run_row(child_id) is not None:
            return
        own = self.history.run_row(self.run_id)
        if own is None:
            return
        props: dict[str, Any] = {RUN_KIND: CHILD_KIND}
        if op.get("name"):
            props["display_name"] = str(op["name"])
        self.history.insert_run(child_id, own["experiment"], None, {}, None,
                                {str(k): str(v) for k, v in dict(op.get("tags") or {}).items()},
                                own["priority"], parent_id=str(op["parent_id"]), properties=props,
                                status="Running")
        self.history.update_run(child_id, started=float(op.get("ts") or 0) or None)
        self.children().add(child_id)

    def _model(self, op: dict[str, Any], transport: Transport, paths: RunPaths) -> None:
        rel = check_rel(op["path"], "model_path")
        source = f"{paths.artifacts}/{rel}"

        def write(folder: Path) -> None:
            name = PurePosixPath(rel).name
            files = transport.list_files(source)
            if not files:
                transport.get_file(source, folder / name)
            for sub in files:
                transport.get_file(f"{source}/{sub}", folder / name / sub)

        registry = ModelRegistry(self.history, self.workspace.root)
        registry.register(str(op["name"]), rel, write, self.run_id, dict(op.get("tags") or {}),
                          dict(op.get("properties") or {}), op.get("description"), token=str(op["token"]))

    def _file(self, op: dict[str, Any], transport: Transport, paths: RunPaths) -> None:
        name, source = check_rel(op["name"]), check_rel(op["source"], "source")
        transport.get_file(f"{paths.run_dir}/{source}", self.workspace.run_files(str(op["run_id"])) / name)


def settle(history: RunHistory, run_id: str, status: str,
           error: dict[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
    """The final (status, error) of a run whose processes ended: a fail() the job asked for wins
    over a clean exit; the child runs it made that are still open end with it (Completed when
    it completed, else with its status)."""
    row = history.run_row(run_id)
    requested = (row["properties"].get(REQUESTED_STATUS) if row else None) or {}
    if status == "Completed" and requested.get("status") == "Failed":
        status = "Failed"
        error = {"message": (requested.get("error") or {}).get("message") or "failed by the run itself",
                 **{k: v for k, v in (requested.get("error") or {}).items() if k != "message"}}
    todo = [run_id]
    while todo:
        for child in history.run_rows(parent_id=todo.pop(), status=ACTIVE_STATUSES):
            if child["properties"].get(RUN_KIND) != CHILD_KIND:
                continue
            todo.append(child["id"])
            why = f"its parent run {run_id} ended {status}"
            history.set_status(child["id"], status, why,
                               error=None if status == "Completed" else {"message": why})
    return status, error

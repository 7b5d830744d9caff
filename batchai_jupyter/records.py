"""The rows of history.db as typed dicts: what clients and the engine hand each other.

history.db is the boundary between every client process (notebook kernels, the CLI) and the
engine; RunHistory (the history package) returns these shapes and nothing else. They stay dicts, so a
row is read the way it always was (`run["status"]`), and mypy checks every key. Standard
library only: the engine and the backends import it.
"""
from __future__ import annotations

from typing import Any, TypedDict

#: A JobSpec's stored form (JobSpec.to_dict(); JobSpec.from_dict() rebuilds the typed spec).
SpecDict = dict[str, Any]
#: JSON properties of a run: snapshot sizes, waiting reason, exit codes, backend state.
Properties = dict[str, Any]


class NodeRef(TypedDict, total=False):
    """A node as a run row records it (the gang the run was granted)."""

    id: str
    address: str | None
    info: dict[str, Any]


class RunError(TypedDict, total=False):
    """Why a run failed or was canceled (docs/reference/python-api.md: an error with the exit code per process)."""

    message: str
    exit_codes: dict[str, int | None]
    failed_process: str
    exit_code: int | None
    last_lines: list[str]


class RunRow(TypedDict):
    """One run."""

    id: str
    number: int
    experiment: str
    cluster: str | None
    parent_id: str | None
    status: str
    priority: int
    spec: SpecDict
    snapshot: str | None
    tags: dict[str, str]
    properties: Properties
    error: RunError | None
    nodes: list[NodeRef]
    created: float
    started: float | None
    ended: float | None
    cancel_requested: bool


class NewRun(TypedDict):
    """A run as a submit inserts it (RunHistory.insert_runs: many in one transaction)."""

    id: str
    experiment: str
    cluster: str | None
    spec: SpecDict
    snapshot: str | None
    tags: dict[str, str]
    priority: int
    parent_id: str | None
    properties: Properties
    status: str


class NodeRow(TypedDict):
    """One node of a cluster, as its backend recorded it."""

    cluster: str
    id: str
    address: str | None
    state: str
    run_id: str | None
    error: str | None
    gpus: int
    since: float
    info: dict[str, Any]


class DatastoreRow(TypedDict):
    """A registered datastore (its credential is only in the secrets file)."""

    name: str
    kind: str
    config: dict[str, Any]
    is_default: bool


class EventRow(TypedDict):
    """One status change of a run."""

    ts: float
    status: str
    message: str | None


class IntentRow(TypedDict):
    """A client's request the engine carries out (cancel, cluster delete)."""

    id: int
    kind: str
    target: str
    payload: dict[str, Any]
    created: float
    done: float | None


class ModelRow(TypedDict):
    """One registered model version (its files are under models/<name>/<version>/)."""

    name: str
    version: int
    run_id: str | None
    path: str
    tags: dict[str, str]
    properties: dict[str, str]
    description: str | None
    created: float


__all__ = ["DatastoreRow", "EventRow", "IntentRow", "ModelRow", "NodeRef", "NodeRow", "Properties", "RunError",
           "RunRow", "SpecDict"]

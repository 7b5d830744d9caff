"""One mapping from our typed errors to HTTP answers `{code, message, hint}` (docs/lab.md).

Every handler raises; only this module decides the status. Errors we do not know stay 500
`internal` and are logged with their traceback by the handler, never hidden behind a 4xx.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import (
    BatchAIError,
    ClusterError,
    ClusterNotFound,
    FileNotInRun,
    ModelNotFound,
    RunActive,
    RunNotFound,
    SpecError,
    WaitTimeout,
    WorkspaceError,
)


class ApiError(Exception):
    """An answer the API gives on purpose: a status, a code and text a user can act on."""

    def __init__(self, status: int, code: str, message: str, hint: str = "", **extra: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "hint": self.hint, **self.extra}


def invalid(field: str, problem: str, valid: Iterable[Any] | str | None = None) -> ApiError:
    """A 400 naming the field (a query parameter or a body key) and, when known, its choices."""
    return spec_error(SpecError(field, problem, valid))


def not_found(message: str, hint: str) -> ApiError:
    return ApiError(404, "not_found", message, hint)


def conflict(message: str, hint: str) -> ApiError:
    return ApiError(409, "conflict", message, hint)


NO_WORKSPACE = ("no workspace is open in this server",
                ("create one with `batchai workspace create` (or Workspace.create('.batchai')) in the folder "
                "JupyterLab was started from, or start it with --BatchAIServer.workspace=PATH"))


def no_workspace() -> ApiError:
    return ApiError(409, "no_workspace", *NO_WORKSPACE)


def from_exception(exc: BaseException) -> ApiError | None:
    """The API error of one of our typed errors; None for anything else (a 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, SpecError):
        return spec_error(exc)
    if isinstance(exc, (RunNotFound, FileNotInRun, ModelNotFound)):
        return not_found(str(exc), "the run list (GET /runs) and a run's files (GET /runs/{id}) show what exists")
    if isinstance(exc, ClusterNotFound):
        return not_found(str(exc), f"known clusters: {', '.join(exc.known) or 'none'}")
    if isinstance(exc, RunActive):
        return conflict(str(exc), f"cancel the run (POST /runs/{exc.run_id}:cancel) and wait for it to end")
    if isinstance(exc, WorkspaceError):
        return ApiError(409, "unwritable", str(exc), "free space on the workspace's disk, or make it writable")
    if isinstance(exc, (ClusterError, WaitTimeout)):
        return conflict(str(exc), "check the cluster's settings and state (GET /clusters)")
    if isinstance(exc, BatchAIError):
        return ApiError(400, "invalid", str(exc), "correct the request")
    return None


def spec_error(exc: SpecError) -> ApiError:
    """400 `invalid` with the field and its valid values, as the SpecError names them."""
    valid = exc.valid
    hint = f"valid: {valid if isinstance(valid, str) else ', '.join(map(str, valid))}" \
        if valid is not None else f"correct {exc.field}"
    extra: dict[str, Any] = {"field": exc.field}
    if valid is not None:
        extra["valid"] = valid
    return ApiError(400, "invalid", str(exc), hint, **extra)

"""The error family every public call raises (docs/reference/errors.md).

Each error says what was wrong and how to fix it: a SpecError names the field and the valid
values, so a notebook user can correct the call without reading our source.
"""
from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence
from typing import Any


class BatchAIError(Exception):
    """Base of every error batchai_jupyter raises on purpose."""


class SpecError(BatchAIError, ValueError):
    """A job specification (or job.json) field is missing or invalid."""

    def __init__(self, field: str, problem: str, valid: Iterable[Any] | str | None = None):
        self.field = field
        self.problem = problem
        self.valid = valid if isinstance(valid, (str, type(None))) else list(valid)
        text = f"{field}: {problem}"
        if self.valid is not None:
            shown = self.valid if isinstance(self.valid, str) else ", ".join(map(str, self.valid))
            text += f" (valid: {shown})"
        super().__init__(text)


class SnapshotError(BatchAIError):
    """A source directory cannot be snapshotted (missing, or over a limit)."""


class ClusterError(BatchAIError):
    """A cluster is unknown, misconfigured, or cannot do what was asked."""


class NodeRefused(ClusterError):
    """A node refuses us for a reason trying again does not fix (its host key is unknown or
    changed, our key is not accepted): a pool that cannot fill a run's nodes without such nodes
    fails the run."""


class ClusterNotFound(ClusterError, KeyError):
    """No cluster of that name exists in the workspace."""

    def __init__(self, name: str, known: Sequence[str]):
        self.name = name
        self.known = list(known)
        super().__init__(f"cluster {name!r} not found (known clusters: {', '.join(known) or 'none'})")

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.args[0]


class ContainerError(BatchAIError):
    """A job's image cannot be used on a node: the runtime is missing, the image is not there
    (image_pull='never') or the registry refused it; the text names the image and the answer."""

    def __init__(self, image: str, problem: str):
        self.image = image
        super().__init__(f"image {image!r}: {problem}")


class DatastoreError(BatchAIError):
    """A datastore is unknown, unreachable, or refused an operation."""


class WorkspaceError(BatchAIError):
    """The workspace folder cannot be written (its disk is full, or it is read-only)."""


#: errno values that mean "the workspace's disk refuses writes": full, over quota, read-only
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
UNWRITABLE_ERRNOS = (*DISK_FULL_ERRNOS, errno.EROFS)


class RunNotFound(BatchAIError, KeyError):
    """No run with that id exists in the workspace."""

    def __str__(self) -> str:
        return self.args[0]


class RunFailed(BatchAIError):
    """A run ended Failed or Canceled while the caller waited with raise_on_error=True."""

    def __init__(self, run: Any, message: str, last_lines: Sequence[str] = ()):
        self.run = run
        self.last_lines = list(last_lines)
        text = message
        if self.last_lines:
            text += "\n--- last lines ---\n" + "\n".join(self.last_lines)
        super().__init__(text)


class ModelNotFound(BatchAIError, KeyError):
    """No registered model of that name (or version); the message lists what there is."""

    def __str__(self) -> str:
        return self.args[0]


class WaitTimeout(BatchAIError, TimeoutError):
    """wait_for_completion(timeout=...) ran out before the run ended; the run goes on."""


class FileNotInRun(BatchAIError, FileNotFoundError):
    """A run has no file of that name (the message lists the names it has)."""


class RunActive(BatchAIError, RuntimeError):
    """The run has not ended, and the operation (delete) needs it to have."""

    def __init__(self, run_id: str, status: str, message: str):
        self.run_id = run_id
        self.status = status
        super().__init__(message)

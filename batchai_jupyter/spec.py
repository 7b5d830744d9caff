"""JobSpec: what to run, where, and with what — validated before anything is uploaded."""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import SpecError

DISTRIBUTIONS = (None, "pytorch", "mpi", "tensorflow")
PRIORITY_NAMES = ("low", "normal", "high")
DEFAULT_WALL_CLOCK = 7 * 24 * 3600
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class JobSpec:
    """A job as API.md §1 describes it; field names are the public contract."""

    source_directory: str | os.PathLike[str] = "."
    command: str | None = None
    script: str | None = None
    arguments: list[str] = field(default_factory=list)
    node_count: int = 1
    process_count_per_node: int = 1
    distribution: str | None = None
    parameter_server_count: int | None = None
    worker_count: int | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    mounts: dict[str, Any] = field(default_factory=dict)
    environment_variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    job_preparation: str | None = None
    gpus_per_process: int = 0
    max_wall_clock_seconds: int = DEFAULT_WALL_CLOCK
    priority: str = "normal"
    # Batch AI compatibility (job.json import); optional for everyone else.
    python_interpreter: str | None = None
    communication_backend: str | None = None
    tensorflow_arguments: dict[str, list[str]] = field(default_factory=dict)
    master_only: bool = False
    std_out_err_path_prefix: str | None = None

    # ---------------------------------------------------------------------------------------
    def validate(self, check_files: bool = True) -> "JobSpec":
        """Raise SpecError naming the first bad field; return self so calls chain."""
        if (self.command is None) == (self.script is None):
            raise SpecError("command", "give exactly one of command= or script=",
                            "command='python train.py' or script='train.py'")
        if self.command is not None and not str(self.command).strip():
            raise SpecError("command", "is empty", "a shell command line")
        if not isinstance(self.arguments, (list, tuple)):
            raise SpecError("arguments", f"must be a list of strings, got {type(self.arguments).__name__}")
        _check_int("node_count", self.node_count, 1)
        _check_int("process_count_per_node", self.process_count_per_node, 1)
        _check_int("gpus_per_process", self.gpus_per_process, 0)
        _check_int("max_wall_clock_seconds", self.max_wall_clock_seconds, 1)
        if self.distribution not in DISTRIBUTIONS:
            raise SpecError("distribution", f"unknown value {self.distribution!r}",
                            ["None", "pytorch", "mpi", "tensorflow"])
        if self.priority not in PRIORITY_NAMES:
            raise SpecError("priority", f"unknown value {self.priority!r}", PRIORITY_NAMES)
        if self.distribution == "tensorflow":
            _check_int("worker_count", self.worker_count if self.worker_count is not None else 1, 1)
            _check_int("parameter_server_count", self.parameter_server_count or 0, 0)
            tasks = (self.worker_count or self.node_count) + (self.parameter_server_count or 0)
            slots = self.node_count * self.process_count_per_node if isinstance(self.node_count, int) \
                and isinstance(self.process_count_per_node, int) else 0
            if tasks > slots:
                raise SpecError("worker_count", f"worker_count + parameter_server_count = {tasks} is more "
                                f"than the {slots} process slots (node_count x process_count_per_node)",
                                f"at most {slots} tasks, or more nodes/processes per node")
        elif self.worker_count is not None or self.parameter_server_count is not None:
            raise SpecError("worker_count", "worker_count/parameter_server_count need "
                            "distribution='tensorflow'", ["distribution='tensorflow'"])
        for kind, mapping in (("environment_variables", self.environment_variables),
                              ("secrets", self.secrets)):
            if not isinstance(mapping, Mapping):
                raise SpecError(kind, "must be a dict of NAME -> value")
            for name in mapping:
                if not _IDENT.match(str(name)):
                    raise SpecError(kind, f"{name!r} is not a valid variable name",
                                    "letters, digits and _, not starting with a digit")
        for kind in ("inputs", "outputs"):
            for name in getattr(self, kind):
                if not _IDENT.match(str(name)):
                    raise SpecError(kind, f"id {name!r} is not an identifier",
                                    "letters, digits and _, not starting with a digit")
        for name in self.mounts:
            if not re.match(r"^[A-Za-z0-9_.-]+$", str(name)) or name in (".", ".."):
                raise SpecError("mounts", f"mount name {name!r} is not a plain folder name",
                                "letters, digits, '.', '_' and '-'")
        if check_files:
            src = Path(self.source_directory).expanduser()
            if not src.is_dir():
                raise SpecError("source_directory", f"{str(src)!r} does not exist or is not a folder",
                                "an existing folder")
            if self.script is not None and "$" not in self.script:
                script = Path(self.script)
                if script.is_absolute() or ".." in script.parts:
                    raise SpecError("script", f"{self.script!r} must be a path inside source_directory")
                if not (src / script).is_file():
                    raise SpecError("script", f"{self.script!r} not found in {str(src)!r}",
                                    "a file inside source_directory")
        return self

    # ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec as stored in history.db: secrets reduced to their names."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["source_directory"] = str(Path(self.source_directory).expanduser().resolve())
        d["secrets"] = sorted(self.secrets)
        d["arguments"] = [str(a) for a in self.arguments]
        for kind in ("inputs", "outputs", "mounts"):
            d[kind] = {k: _ref_dict(v) for k, v in getattr(self, kind).items()}
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        if isinstance(kwargs.get("secrets"), list):
            kwargs["secrets"] = {k: "" for k in kwargs["secrets"]}
        return cls(**kwargs)

    def process_count(self) -> int:
        return self.node_count * self.process_count_per_node

    @classmethod
    def from_batchai_json(cls, path_or_dict: str | os.PathLike[str] | Mapping[str, Any],
                          source_directory: str | os.PathLike[str] | None = None,
                          workspace: Any = None) -> "JobSpec":
        """Import a 2018-05-01 Batch AI job.json (the {"properties": ...} wrapper is accepted)."""
        from .importers.batchai.job import spec_from_batchai_json
        return spec_from_batchai_json(cls, path_or_dict, source_directory, workspace)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(name, f"must be an integer >= {minimum}, got {value!r}", f"{minimum} or more")


def _ref_dict(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "as_mount") and hasattr(value, "name"):  # a Datastore passed as a mount
        return {"datastore": value.name, "path": "", "mode": "mount"}
    return value


def split_args(value: str | list[str] | None) -> list[str]:
    """Batch AI passed arguments as one string; we keep a list."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

"""JobSpec: what to run, where, and with what — validated before anything is uploaded.

Standard library only: node agents import it. Every default of a job lives here, once: the
dataclass fields use the DEFAULT_* constants, `from_dict` fills what an older stored spec lacks
from the same fields, so the engine and the nodes read `JobSpec.from_dict(run["spec"])` instead
of re-typing `spec.get("node_count", 1)`.

Stored form (history.db, run manifests): `to_dict()`, which carries `spec_version`. A dict
without it is version 1 (rows written before versioning); a newer version is refused with a
SpecError rather than misread.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SpecError
from .images import (
    IMAGE_FORMS,
    image_problem,
    image_registry,  # noqa: F401 -- re-exported: node/ reads images through spec
)

#: The version `to_dict()` writes; `from_dict()` reads this and every older one.
SPEC_VERSION = 1
DISTRIBUTIONS = (None, "pytorch", "mpi", "tensorflow")
PRIORITY_NAMES = ("low", "normal", "high")
#: Queue order of the priority names (higher runs first); history.db stores the number.
PRIORITIES: dict[str, int] = {"low": 0, "normal": 1, "high": 2}
DEFAULT_NODE_COUNT = 1
DEFAULT_PROCESS_COUNT_PER_NODE = 1
DEFAULT_GPUS_PER_PROCESS = 0
DEFAULT_WALL_CLOCK = 7 * 24 * 3600
DEFAULT_PRIORITY = "normal"
DEFAULT_SOURCE_DIRECTORY = "."
#: Upper bounds: the most nodes a cluster (and so a job) may have, processes per node, and
#: tensorflow tasks (workers, parameter servers) of one job.
MAX_NODES = 10_000
MAX_PROCESSES_PER_NODE = 1024
MAX_TF_TASKS = 10_000
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CONTAINER_RUNTIMES = ("podman", "docker", "apptainer")
DEFAULT_CONTAINER_RUNTIME = "podman"
IMAGE_PULL_POLICIES = ("missing", "always", "never")
DEFAULT_IMAGE_PULL = "missing"
_SHM_SIZE = re.compile(r"^[1-9][0-9]*[bkmgBKMG]?$")
_OPTIONAL_TEXT = ("script", "job_preparation", "python_interpreter", "communication_backend")

#: A data reference as a JobSpec holds it: a DataReference (ds.path(...).as_download()), a
#: Datastore (mounts only) or the stored dict {"datastore", "path", "mode", ...}.
DataRef = Any


@dataclass
class JobSpec:
    """A job as docs/reference/python-api.md describes it; field names are the public contract."""

    source_directory: str | os.PathLike[str] = DEFAULT_SOURCE_DIRECTORY
    command: str | None = None
    script: str | None = None
    arguments: list[str] = field(default_factory=list)
    node_count: int = DEFAULT_NODE_COUNT
    process_count_per_node: int = DEFAULT_PROCESS_COUNT_PER_NODE
    distribution: str | None = None
    parameter_server_count: int | None = None
    worker_count: int | None = None
    inputs: dict[str, DataRef] = field(default_factory=dict)
    outputs: dict[str, DataRef] = field(default_factory=dict)
    mounts: dict[str, DataRef] = field(default_factory=dict)
    environment_variables: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    job_preparation: str | None = None
    gpus_per_process: int = DEFAULT_GPUS_PER_PROCESS
    max_wall_clock_seconds: int = DEFAULT_WALL_CLOCK
    priority: str = DEFAULT_PRIORITY
    # Batch AI compatibility (job.json import); optional for everyone else.
    python_interpreter: str | None = None
    communication_backend: str | None = None
    tensorflow_arguments: dict[str, list[str]] = field(default_factory=dict)
    master_only: bool = False
    #: Batch AI's stdOutErrPathPrefix: a DataReference (ds.path("logs")) or a folder path on the
    #: nodes; std out/err are also copied there, in Batch AI's layout, when the run ends.
    std_out_err_path_prefix: DataRef | None = None
    # Containers (docs/containers.md): the job's processes run in this OCI image, one per node.
    image: str | None = None
    image_pull: str = DEFAULT_IMAGE_PULL
    shm_size: str | None = None
    container_options: list[str] = field(default_factory=list)
    # Node disk: keep this run's folder on its nodes once it ended (for debugging), whatever its status.
    keep_node_files: bool = False
    #: A parent that follows its children: Running while any child run is active, then ending
    #: with their outcome (Failed if one failed, else Canceled if one was canceled, else its own).
    #: Without command= or script= the run has no process of its own and never takes a node.
    wait_for_children: bool = False

    def __repr__(self) -> str:
        """The dataclass repr with secret values masked (str() is the same)."""
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "secrets":
                value = {k: "***" for k in value} if isinstance(value, Mapping) else "***"
            parts.append(f"{f.name}={value!r}")
        return f"{type(self).__qualname__}({', '.join(parts)})"

    # ---------------------------------------------------------------------------------------
    def validate(self, check_files: bool = True) -> JobSpec:
        """Raise SpecError naming the first bad field; return self so calls chain."""
        self._check_types()
        if self.command is not None and self.script is not None or \
                self.command is None and self.script is None and not self.wait_for_children:
            raise SpecError("command", "give exactly one of command= or script=",
                            "command='python train.py' or script='train.py'")
        if self.command is not None and not str(self.command).strip():
            raise SpecError("command", "is empty", "a shell command line")
        _check_int("node_count", self.node_count, 1, MAX_NODES)
        _check_int("process_count_per_node", self.process_count_per_node, 1, MAX_PROCESSES_PER_NODE)
        _check_int("gpus_per_process", self.gpus_per_process, 0)
        _check_int("max_wall_clock_seconds", self.max_wall_clock_seconds, 1)
        if self.distribution not in DISTRIBUTIONS:
            raise SpecError("distribution", f"unknown value {self.distribution!r}",
                            ["None", "pytorch", "mpi", "tensorflow"])
        if self.priority not in PRIORITY_NAMES:
            raise SpecError("priority", f"unknown value {self.priority!r}", PRIORITY_NAMES)
        if self.distribution == "tensorflow":
            _check_int("worker_count", self.worker_count if self.worker_count is not None else 1, 1,
                       MAX_TF_TASKS)
            _check_int("parameter_server_count", self.parameter_server_count or 0, 0, MAX_TF_TASKS)
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
        self._check_container()
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

    def _check_types(self) -> None:
        """Every field has its type, and no text holds a NUL byte (SpecError naming the field)."""
        source = self.source_directory
        if not isinstance(source, (str, os.PathLike)):
            raise SpecError("source_directory", f"must be a path, got {type(source).__name__}",
                            "a folder path, e.g. '.'")
        _check_text("source_directory", os.fspath(source))
        if self.command is not None:
            _check_text("command", self.command)
        for name in _OPTIONAL_TEXT:
            if getattr(self, name) is not None:
                _check_text(name, getattr(self, name))
        if not isinstance(self.arguments, (list, tuple)):
            raise SpecError("arguments", f"must be a list of strings, got {type(self.arguments).__name__}")
        for i, arg in enumerate(self.arguments):
            if isinstance(arg, bool) or not isinstance(arg, (str, int, float)):
                raise SpecError("arguments", f"item {i} is {arg!r}, not a string", "strings (numbers are "
                                "turned into strings)")
            _check_text("arguments", str(arg))
        for kind in ("environment_variables", "secrets"):
            mapping = getattr(self, kind)
            if not isinstance(mapping, Mapping):
                raise SpecError(kind, f"must be a dict of NAME -> value, got {type(mapping).__name__}")
            for name, value in mapping.items():
                shown = type(value).__name__ if kind == "secrets" else repr(value)  # never a secret value
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    raise SpecError(kind, f"the value of {name!r} is {shown}, not a string",
                                    "strings (numbers are turned into strings)")
                if "\0" in str(name) or "\0" in str(value):
                    raise SpecError(kind, f"{name!r} or its value holds a NUL byte", "text without NUL bytes")
        for kind in ("inputs", "outputs", "mounts", "tensorflow_arguments"):
            if not isinstance(getattr(self, kind), Mapping):
                raise SpecError(kind, f"must be a dict, got {type(getattr(self, kind)).__name__}")
        from .datastores.reference import checked_reference  # its paths: no NUL, '..' or '/x'
        for kind in ("inputs", "outputs", "mounts"):
            for key, value in getattr(self, kind).items():
                checked_reference(kind, str(key), value)
        prefix = self.std_out_err_path_prefix
        if prefix is not None and not isinstance(prefix, (str, Mapping)) and not hasattr(prefix, "to_dict"):
            raise SpecError("std_out_err_path_prefix", f"a {type(prefix).__name__} is not a place for std "
                            "out/err", "ds.path('logs') or a folder path on the nodes")
        if isinstance(prefix, str):
            _check_text("std_out_err_path_prefix", prefix)
        if not isinstance(self.master_only, bool):
            raise SpecError("master_only", f"must be True or False, got {self.master_only!r}", [True, False])
        if not isinstance(self.keep_node_files, bool):
            raise SpecError("keep_node_files", f"must be True or False, got {self.keep_node_files!r}",
                            [True, False])
        if not isinstance(self.wait_for_children, bool):
            raise SpecError("wait_for_children", f"must be True or False, got {self.wait_for_children!r}",
                            [True, False])

    def _check_container(self) -> None:
        """image=, image_pull=, shm_size= and container_options= (SpecError naming the field)."""
        if self.image is not None:
            _check_text("image", self.image)
            problem = image_problem(self.image)
            if problem:
                raise SpecError("image", f"{self.image!r} {problem}", IMAGE_FORMS)
        if self.image_pull not in IMAGE_PULL_POLICIES:
            raise SpecError("image_pull", f"unknown value {self.image_pull!r}", IMAGE_PULL_POLICIES)
        if self.shm_size is not None and not (isinstance(self.shm_size, str)
                                              and _SHM_SIZE.match(self.shm_size)):
            raise SpecError("shm_size", f"{self.shm_size!r} is not a size",
                            "a number with an optional unit b, k, m or g, e.g. '8g'")
        if not isinstance(self.container_options, (list, tuple)) or \
                not all(isinstance(o, str) and "\0" not in o for o in self.container_options):
            raise SpecError("container_options", f"must be a list of strings, got {self.container_options!r}",
                            "e.g. ['--cap-add', 'SYS_PTRACE']")

    # ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec as stored in history.db and run manifests: versioned, secrets reduced to
        their names, data references as plain dicts."""
        d: dict[str, Any] = {"spec_version": SPEC_VERSION}
        d.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        d["source_directory"] = str(Path(self.source_directory).expanduser().resolve())
        d["secrets"] = sorted(self.secrets)
        d["arguments"] = [str(a) for a in self.arguments]
        for kind in ("inputs", "outputs", "mounts"):
            d[kind] = {k: _ref_dict(v) for k, v in getattr(self, kind).items()}
        if self.std_out_err_path_prefix is not None and not isinstance(self.std_out_err_path_prefix, str):
            d["std_out_err_path_prefix"] = _ref_dict(self.std_out_err_path_prefix)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        """A JobSpec from `to_dict()` output or an older stored spec (no `spec_version`).

        Keys this version does not know are ignored; a missing or null field takes its default
        (the same default a new JobSpec gets); a newer `spec_version` is a SpecError.
        """
        if not isinstance(data, Mapping):
            raise SpecError("spec", f"must be a dict, got {type(data).__name__}")
        version = data.get("spec_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise SpecError("spec_version", f"{version!r} is not a spec version", f"1..{SPEC_VERSION}")
        if version > SPEC_VERSION:
            raise SpecError("spec_version", f"this spec was written by a newer batchai_jupyter "
                            f"(version {version}); this one reads up to {SPEC_VERSION}",
                            "upgrade batchai-jupyter where the spec is read")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if value is None and _has_default(f) and f.default is not None:
                continue  # a null where the field has a real default: take the default
            kwargs[f.name] = value
        secrets = kwargs.get("secrets")
        if isinstance(secrets, (list, tuple)):  # stored form: names only
            kwargs["secrets"] = {str(k): "" for k in secrets}
        if "arguments" in kwargs and isinstance(kwargs["arguments"], (list, tuple)):
            kwargs["arguments"] = [str(a) for a in kwargs["arguments"]]
        return cls(**kwargs)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field's default value, as a new JobSpec() has it."""
        return {f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING
                         else f.default) for f in dataclasses.fields(cls)}

    # -- typed accessors (what the engine, the nodes and the views read) -------------------------
    def process_count(self) -> int:
        """Processes of the whole job: node_count x process_count_per_node."""
        return self.node_count * self.process_count_per_node

    @property
    def priority_rank(self) -> int:
        """The queue order of `priority` (history.db's priority column): higher runs first."""
        return PRIORITIES.get(self.priority, PRIORITIES[DEFAULT_PRIORITY])

    @property
    def has_data(self) -> bool:
        """True when the job reads or writes datastore data (inputs, outputs or mounts)."""
        return bool(self.inputs or self.outputs or self.mounts)

    @property
    def secret_names(self) -> list[str]:
        return sorted(self.secrets)

    @property
    def has_process(self) -> bool:
        """False for a parent with no command of its own (wait_for_children=True, no command/script)."""
        return self.command is not None or self.script is not None

    @property
    def entry(self) -> str:
        """What the job runs, for display: its command line, or the script and arguments."""
        if self.command is not None:
            return str(self.command)
        return " ".join([str(self.script or ""), *(str(a) for a in self.arguments)]).strip()

    @classmethod
    def from_batchai_json(cls, path_or_dict: str | os.PathLike[str] | Mapping[str, Any],
                          workspace: Any = None,
                          source_directory: str | os.PathLike[str] | None = None,
                          storage_account: str | None = None, storage_key: str | None = None,
                          storage_sas: str | None = None) -> JobSpec:
        """Import a Batch AI job.json (2018-05-01 or 2018-03-01; the {"properties": ...} wrapper
        is accepted).

        Parameters
        ----------
        path_or_dict: the job.json file, or its content as a dict.
        workspace: where its shares and containers become datastores (None: Workspace.from_config()).
        source_directory: snapshotted for the job (None: the job.json's folder, else the cwd).
        storage_account, storage_key, storage_sas: replace <AZURE_BATCHAI_STORAGE_ACCOUNT> (and
            <AZURE_BATCHAI_STORAGE_KEY>) and give the volumes without credentials their key or SAS,
            as `az batchai job create --storage-account-name/--storage-account-key` did.
        """
        from .importers.batchai.job import StorageAccount, spec_from_batchai_json
        return spec_from_batchai_json(cls, path_or_dict, source_directory, workspace,
                                      StorageAccount(storage_account, storage_key, storage_sas))


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(name, f"must be an integer >= {minimum}, got {value!r}", f"{minimum} or more")
    if maximum is not None and value > maximum:
        raise SpecError(name, f"{value} is more than the limit of {maximum}", f"{minimum}..{maximum}")


def _check_text(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise SpecError(name, f"must be a string, got {type(value).__name__} {value!r}")
    if "\0" in value:
        raise SpecError(name, "holds a NUL byte", "text without NUL bytes")


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

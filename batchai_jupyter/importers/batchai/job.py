"""Import of Batch AI (2018-05-01) job.json files into a JobSpec."""
from __future__ import annotations

import importlib
import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import SpecError
from .schema import check_properties

TOOLKITS = ("customToolkitSettings", "pyTorchSettings", "tensorFlowSettings", "customMpiSettings",
            "horovodSettings", "chainerSettings", "cntkSettings", "caffeSettings", "caffe2Settings")
DATA_FIELDS = ("mountVolumes", "inputDirectories", "outputDirectories")
_ISO = re.compile(r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?"
                  r"(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")
_TIMESPAN = re.compile(r"^(?:(?P<d>\d+)\.)?(?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)$")


def parse_duration(text: str, field: str = "constraints.maxWallClockTime") -> int:
    """'P7D', 'PT1H30M' (ISO 8601) or '1.02:00:00' (.NET timespan) -> seconds."""
    match = _ISO.match(text) if isinstance(text, str) else None
    if match is None and isinstance(text, str):
        match = _TIMESPAN.match(text)
    if match is None or not any(match.groupdict().values()):
        raise SpecError(field, f"{text!r} is not a duration", "ISO 8601 like 'P7D', 'PT2H' or 'd.hh:mm:ss'")
    parts = {k: float(v or 0) for k, v in match.groupdict().items()}
    return int(parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"])


def _load(path_or_dict: Any) -> tuple[dict[str, Any], Path | None]:
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict), None
    path = Path(path_or_dict).expanduser()
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))  # Windows editors write a BOM
    except FileNotFoundError:
        raise SpecError("job.json", f"{str(path)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError("job.json", f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError("job.json", "the top level must be an object")
    return data, path.parent


def _pairs(props: Mapping[str, Any], key: str) -> dict[str, str]:
    items = props.get(key) or []
    if not isinstance(items, list):
        raise SpecError(key, "must be a list of {name, value} objects")
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or "name" not in item:
            raise SpecError(f"{key}[{i}]", "must be an object with name and value")
        if "value" not in item:
            if "keyVaultSecretReference" in item:
                raise SpecError(f"{key}[{i}].keyVaultSecretReference",
                                "Key Vault references are not supported here", ["value"])
            raise SpecError(f"{key}[{i}].value", "is missing")
        out[str(item["name"])] = str(item["value"])
    return out


ACCOUNT_PLACEHOLDER = "<AZURE_BATCHAI_STORAGE_ACCOUNT>"
KEY_PLACEHOLDER = "<AZURE_BATCHAI_STORAGE_KEY>"
#: How a Python caller names the storage account options (the CLI passes its flags instead).
PYTHON_NAMES = {"account": "storage_account=", "key": "storage_key=", "sas": "storage_sas="}
CLI_FLAGS = {"account": "--storage-account-name", "key": "--storage-account-key",
             "sas": "--storage-account-sas"}


@dataclass(frozen=True)
class StorageAccount:
    """The storage account a job.json's placeholders and credential-less volumes refer to."""

    name: str | None = None
    key: str | None = None
    sas: str | None = None
    names: Mapping[str, str] = field(default_factory=lambda: dict(PYTHON_NAMES))

    def hint(self, what: str = "account") -> str:
        return self.names[what]


def fill_placeholders(value: Any, storage: StorageAccount, where: str = "properties") -> Any:
    """Every <AZURE_BATCHAI_STORAGE_ACCOUNT> / <AZURE_BATCHAI_STORAGE_KEY> replaced, as `az batchai
    job create --storage-account-name` did; SpecError naming the first field left without one."""
    if isinstance(value, Mapping):
        return {k: fill_placeholders(v, storage, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [fill_placeholders(v, storage, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    for mark, given, what in ((ACCOUNT_PLACEHOLDER, storage.name, "account"),
                              (KEY_PLACEHOLDER, storage.key, "key")):
        if mark in value:
            if not given:
                raise SpecError(where, f"holds {mark} and no storage {what} was given",
                                [f"{storage.hint(what)} <{what}>"])
            value = value.replace(mark, given)
    return value


def spec_from_batchai_json(cls: type, path_or_dict: Any, source_directory: Any, workspace: Any,
                           storage: StorageAccount | None = None) -> Any:
    data, folder = _load(path_or_dict)
    storage = storage or StorageAccount()
    data = fill_placeholders(data, storage, "job.json")
    props = data.get("properties", data)
    if not isinstance(props, Mapping):
        raise SpecError("properties", "must be an object")
    known = {"nodeCount", "schedulingPriority", "jobPreparation", "environmentVariables", "secrets",
             "constraints", "stdOutErrPathPrefix", "containerSettings", "cluster", "toolType",
             "experimentName", "name", *TOOLKITS, *DATA_FIELDS}
    unknown = sorted(set(props) - known)
    if unknown:
        raise SpecError(unknown[0], "is not a Batch AI job.json (2018-05-01) property", sorted(known))
    check_properties(props)  # keys and types inside the objects, before anything is imported
    toolkits = [k for k in TOOLKITS if props.get(k) is not None]
    if len(toolkits) != 1:
        raise SpecError("toolkit settings", f"exactly one is needed, found {toolkits or 'none'}", TOOLKITS)
    node_count = props.get("nodeCount", 1)
    kw: dict[str, Any] = {
        "source_directory": str(source_directory or folder or os.getcwd()),
        "node_count": node_count,
        "environment_variables": _pairs(props, "environmentVariables"),
        "secrets": _pairs(props, "secrets"),
        "priority": str(props.get("schedulingPriority", "normal")).lower(),
        "std_out_err_path_prefix": props.get("stdOutErrPathPrefix"),
    }
    prep = props.get("jobPreparation")
    if prep is not None:
        if not isinstance(prep, Mapping) or not prep.get("commandLine"):
            raise SpecError("jobPreparation.commandLine", "is missing")
        kw["job_preparation"] = prep["commandLine"]
    wall = (props.get("constraints") or {}).get("maxWallClockTime")
    if wall is not None:
        kw["max_wall_clock_seconds"] = parse_duration(wall)
    _toolkit(toolkits[0], props[toolkits[0]], node_count, kw)
    from .container import import_container
    kw.update(import_container(props, workspace))
    if any(props.get(k) for k in DATA_FIELDS):
        try:
            from .storage import import_data_fields
        except ImportError:
            name = next(k for k in DATA_FIELDS if props.get(k))
            raise SpecError(name, "needs datastore support, which is not installed") from None
        if workspace is None:  # only a job that names storage needs one
            # looked up by name: the client API sits above JobSpec, which must not import it
            workspace = importlib.import_module("batchai_jupyter.workspace").Workspace.from_config()
        kw.update(import_data_fields(props, workspace, storage))
    return cls(**kw).validate()


def _per_node(name: str, process_count: Any, node_count: Any) -> int:
    if process_count is None:
        return 1
    if not isinstance(process_count, int) or not isinstance(node_count, int) or node_count < 1 \
            or process_count < 1 or process_count % node_count:
        raise SpecError(f"{name}.processCount", f"{process_count!r} is not a multiple of nodeCount "
                        f"{node_count!r}", "a positive multiple of nodeCount")
    return process_count // node_count


def _toolkit(name: str, s: Mapping[str, Any], node_count: Any, kw: dict[str, Any]) -> None:
    if not isinstance(s, Mapping):
        raise SpecError(name, "must be an object")

    def script() -> str:
        if not s.get("pythonScriptFilePath"):
            raise SpecError(f"{name}.pythonScriptFilePath", "is missing")
        return str(s["pythonScriptFilePath"])

    if name == "customToolkitSettings":
        if not s.get("commandLine"):
            raise SpecError(f"{name}.commandLine", "is missing")
        kw.update(command=s["commandLine"], master_only=True)
    elif name == "customMpiSettings":
        if not s.get("commandLine"):
            raise SpecError(f"{name}.commandLine", "is missing")
        kw.update(command=s["commandLine"], distribution="mpi",
                  process_count_per_node=_per_node(name, s.get("processCount"), node_count))
    elif name == "pyTorchSettings":
        kw.update(script=script(), arguments=split_args(s.get("commandLineArgs")),
                  python_interpreter=s.get("pythonInterpreterPath"), distribution="pytorch",
                  communication_backend=s.get("communicationBackend"),
                  process_count_per_node=_per_node(name, s.get("processCount"), node_count))
    elif name == "tensorFlowSettings":
        args = {"master": split_args(s.get("masterCommandLineArgs")),
                "worker": split_args(s.get("workerCommandLineArgs")),
                "ps": split_args(s.get("parameterServerCommandLineArgs"))}
        kw.update(script=script(), arguments=args["master"],
                  python_interpreter=s.get("pythonInterpreterPath"))
        if s.get("workerCount") is not None or s.get("parameterServerCount") is not None:
            workers, ps = s.get("workerCount", node_count), s.get("parameterServerCount", 0)
            tasks = workers + ps if isinstance(workers, int) and isinstance(ps, int) else 1
            nodes = node_count if isinstance(node_count, int) and node_count > 0 else 1
            # Batch AI placed ps and worker tasks side by side on the job's nodes
            kw.update(distribution="tensorflow", worker_count=workers, parameter_server_count=ps,
                      tensorflow_arguments=args, process_count_per_node=max(1, -(-tasks // nodes)))
    elif name == "caffe2Settings":  # one process per node, AZ_BATCHAI_TASK_INDEX = the node's index
        kw.update(script=script(), arguments=split_args(s.get("commandLineArgs")),
                  python_interpreter=s.get("pythonInterpreterPath"), process_count_per_node=1)
    elif name in ("cntkSettings", "caffeSettings") and _config_file(name, s):
        tool = "cntk" if name == "cntkSettings" else "caffe"
        config = str(s["configFilePath"])
        line = f"cntk configFile={config}" if tool == "cntk" else f"caffe train --solver={config}"
        extra = s.get("commandLineArgs")
        if extra:
            line += " " + (extra if isinstance(extra, str) else " ".join(shlex.quote(str(a)) for a in extra))
        language = "BrainScript" if tool == "cntk" else "a solver file (configFilePath)"
        # a missing tool fails the run with the reason, not with "command not found" alone
        reason = shlex.quote(f"{language} needs {tool} on the node (install it there, or use "
                             "containerSettings with an image that has it)")
        check = f"command -v {tool} >/dev/null 2>&1 || {{ echo {reason} >&2; exit 127; }}"
        kw.update(command=f"{check}; exec {line}")
        per_node = _per_node(name, s.get("processCount"), node_count)
        if per_node > 1 or (isinstance(node_count, int) and node_count > 1):
            kw.update(distribution="mpi", process_count_per_node=per_node)
    else:  # horovod, chainer, cntk/caffe Python: MPI launch of a Python script
        kw.update(script=script(), arguments=split_args(s.get("commandLineArgs")),
                  python_interpreter=s.get("pythonInterpreterPath"), distribution="mpi",
                  process_count_per_node=_per_node(name, s.get("processCount"), node_count))


def _config_file(name: str, s: Mapping[str, Any]) -> bool:
    """cntkSettings/caffeSettings: True for a config file (BrainScript, a Caffe solver), False for
    a Python script; SpecError when the job gives neither or both."""
    language = str(s.get("languageType") or "")
    has_config, has_script = bool(s.get("configFilePath")), bool(s.get("pythonScriptFilePath"))
    if language.lower() == "brainscript" and not has_config:
        raise SpecError(f"{name}.configFilePath", "is missing (languageType is BrainScript)")
    if has_config and has_script:
        raise SpecError(name, "give configFilePath or pythonScriptFilePath, not both",
                        ["configFilePath", "pythonScriptFilePath"])
    if not has_config and not has_script:
        raise SpecError(f"{name}.configFilePath", "is missing: give configFilePath or pythonScriptFilePath",
                        ["configFilePath", "pythonScriptFilePath"])
    return has_config


def split_args(value: str | list[str] | None) -> list[str]:
    """Batch AI passed arguments as one string; a JobSpec keeps a list."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

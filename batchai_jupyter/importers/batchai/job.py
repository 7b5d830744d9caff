"""Import of Batch AI (2018-05-01) job.json files into a JobSpec."""
from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import SpecError

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
        data = json.loads(path.read_text())
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


def spec_from_batchai_json(cls: type, path_or_dict: Any, source_directory: Any, workspace: Any) -> Any:
    data, folder = _load(path_or_dict)
    props = data.get("properties", data)
    if not isinstance(props, Mapping):
        raise SpecError("properties", "must be an object")
    known = {"nodeCount", "schedulingPriority", "jobPreparation", "environmentVariables", "secrets",
             "constraints", "stdOutErrPathPrefix", "containerSettings", "cluster", "toolType",
             "experimentName", "name", *TOOLKITS, *DATA_FIELDS}
    unknown = sorted(set(props) - known)
    if unknown:
        raise SpecError(unknown[0], "is not a Batch AI job.json (2018-05-01) property", sorted(known))
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
    if any(props.get(k) for k in DATA_FIELDS):
        try:
            from .storage import import_data_fields
        except ImportError:
            field = next(k for k in DATA_FIELDS if props.get(k))
            raise SpecError(field, "needs datastore support, which is not installed") from None
        kw.update(import_data_fields(props, workspace))
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
    else:  # horovod, chainer, cntk, caffe*: MPI launch of a Python script
        kw.update(script=script(), arguments=split_args(s.get("commandLineArgs")),
                  python_interpreter=s.get("pythonInterpreterPath"), distribution="mpi",
                  process_count_per_node=_per_node(name, s.get("processCount"), node_count))


def split_args(value: str | list[str] | None) -> list[str]:
    """Batch AI passed arguments as one string; a JobSpec keeps a list."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

"""The shapes of a Batch AI job.json's objects (2018-05-01 and 2018-03-01), checked before import.

A misspelled key inside an object (`commandLineArguments` for `commandLineArgs`) would otherwise be
dropped without a word, and a wrong type (`constraints: [...]`) would surface as an AttributeError
deep in the import. `check_properties` walks the job's properties against these shapes and raises
SpecError naming the dotted path, the keys that object takes and the closest one.

A shape is a Python type (str, int, bool), a tuple of types, a dict {key: shape} for an object, a
list [shape] for an array, or ANY. Keys of the job's top level are checked by the importer itself.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ...errors import SpecError

ANY = object()
_TEXT = str
_COUNT = int
_ARGS = (str, list)            # Batch AI wrote one string; a list of strings is taken too
_SECRET_REF = {"sourceVault": {"id": str}, "secretUrl": str}
_CREDENTIALS = {"accountKey": str, "accountKeySecretReference": _SECRET_REF, "sasKey": str}
_PYTHON = {"pythonScriptFilePath": _TEXT, "pythonInterpreterPath": _TEXT, "commandLineArgs": _ARGS}

TOOLKIT_SHAPES: dict[str, dict[str, Any]] = {
    "cntkSettings": {"languageType": _TEXT, "configFilePath": _TEXT, **_PYTHON, "processCount": _COUNT},
    "pyTorchSettings": {**_PYTHON, "processCount": _COUNT, "communicationBackend": _TEXT},
    "tensorFlowSettings": {"pythonScriptFilePath": _TEXT, "pythonInterpreterPath": _TEXT,
                           "masterCommandLineArgs": _ARGS, "workerCommandLineArgs": _ARGS,
                           "parameterServerCommandLineArgs": _ARGS, "workerCount": _COUNT,
                           "parameterServerCount": _COUNT},
    "caffeSettings": {"configFilePath": _TEXT, **_PYTHON, "processCount": _COUNT},
    "caffe2Settings": dict(_PYTHON),
    "chainerSettings": {**_PYTHON, "processCount": _COUNT},
    "customToolkitSettings": {"commandLine": _TEXT},
    "customMpiSettings": {"commandLine": _TEXT, "processCount": _COUNT},
    "horovodSettings": {**_PYTHON, "processCount": _COUNT},
}

PROPERTY_SHAPES: dict[str, Any] = {
    "cluster": {"id": _TEXT},
    "nodeCount": _COUNT,
    "schedulingPriority": _TEXT,
    "priority": (int, str),
    "experimentName": _TEXT,
    "location": _TEXT,
    "stdOutErrPathPrefix": _TEXT,
    "jobPreparation": {"commandLine": _TEXT},
    "constraints": {"maxWallClockTime": _TEXT},
    "containerSettings": {
        "imageSourceRegistry": {"serverUrl": _TEXT, "image": _TEXT,
                                "credentials": {"username": _TEXT, "password": _TEXT,
                                                "passwordSecretReference": _SECRET_REF}},
        "shmSize": _TEXT,
    },
    "mountVolumes": {
        "azureFileShares": [{"accountName": _TEXT, "azureFileUrl": _TEXT, "credentials": _CREDENTIALS,
                             "relativeMountPath": _TEXT, "fileMode": _TEXT, "directoryMode": _TEXT}],
        "azureBlobFileSystems": [{"accountName": _TEXT, "containerName": _TEXT, "credentials": _CREDENTIALS,
                                  "relativeMountPath": _TEXT, "mountOptions": _TEXT}],
        "fileServers": [{"fileServer": {"id": _TEXT}, "sourceDirectory": _TEXT, "relativeMountPath": _TEXT,
                         "mountOptions": _TEXT}],
        "unmanagedFileSystems": [{"mountCommand": _TEXT, "relativeMountPath": _TEXT}],
    },
    "inputDirectories": [{"id": _TEXT, "path": _TEXT}],
    "outputDirectories": [{"id": _TEXT, "pathPrefix": _TEXT, "pathSuffix": _TEXT,
                           "type": _TEXT, "createNew": bool}],          # type, createNew: 2018-03-01
    "environmentVariables": [{"name": _TEXT, "value": _TEXT}],
    "secrets": [{"name": _TEXT, "value": _TEXT, "valueSecretReference": _SECRET_REF}],
    **TOOLKIT_SHAPES,
}

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}


def check_properties(props: Mapping[str, Any]) -> None:
    """Raise SpecError for the first key or value of `props` that does not fit its shape."""
    for key, value in props.items():
        shape = PROPERTY_SHAPES.get(key)
        if shape is not None and value is not None:
            _check(value, shape, key)


def _check(value: Any, shape: Any, path: str) -> None:
    if shape is ANY:
        return
    if isinstance(shape, dict):
        if not isinstance(value, Mapping):
            raise SpecError(path, f"must be an object, got {_kind(value)}", sorted(shape))
        for key, item in value.items():
            if key not in shape:
                raise SpecError(f"{path}.{key}", f"is not a key of {path.rsplit('.', 1)[-1]}"
                                f"{_hint(str(key), shape, path)}", sorted(shape))
            if item is not None:
                _check(item, shape[key], f"{path}.{key}")
        return
    if isinstance(shape, list):
        if not isinstance(value, list):
            raise SpecError(path, f"must be a list, got {_kind(value)}")
        for i, item in enumerate(value):
            _check(item, shape[0], f"{path}[{i}]")
        return
    types = shape if isinstance(shape, tuple) else (shape,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise SpecError(path, f"must be {' or '.join(_TYPE_NAMES.get(t, t.__name__) for t in types)}, "
                              f"got {_kind(value)} {value!r:.40}")
    if isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise SpecError(f"{path}[{i}]", f"must be a string, got {_kind(item)}")


def _hint(key: str, shape: dict[str, Any], path: str) -> str:
    """' (did you mean ...?)', and the toolkits that do take a key another toolkit was given
    (the recipes once gave chainerSettings the masterCommandLineArgs of tensorFlowSettings)."""
    notes = []
    close = difflib.get_close_matches(key, list(shape), n=1)
    if close:
        notes.append(f"did you mean {close[0]!r}?")
    if path in TOOLKIT_SHAPES:
        owners = [name for name, other in TOOLKIT_SHAPES.items() if key in other and name != path]
        if owners:
            notes.append(f"{key} is a key of {' and '.join(owners)}")
    return f" ({'; '.join(notes)})" if notes else ""


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)

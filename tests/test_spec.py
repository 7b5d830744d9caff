"""JobSpec validation and Batch AI job.json import: typed errors that name the field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchai_jupyter import JobSpec, SpecError
from batchai_jupyter.importers.batchai.job import parse_duration
from batchai_jupyter.spec import (
    DEFAULT_NODE_COUNT,
    DEFAULT_PRIORITY,
    DEFAULT_WALL_CLOCK,
    PRIORITIES,
    SPEC_VERSION,
)


def test_needs_exactly_one_of_command_or_script(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        JobSpec(source_directory=tmp_path).validate()
    assert err.value.field == "command"
    with pytest.raises(SpecError):
        JobSpec(source_directory=tmp_path, command="true", script="x.py").validate()


@pytest.mark.parametrize("field,value,valid", [
    ("distribution", "horovod", "pytorch"),
    ("priority", "urgent", "high"),
    ("node_count", 0, "1 or more"),
    ("process_count_per_node", "2", "1 or more"),
    ("max_wall_clock_seconds", -5, "1 or more"),
])
def test_bad_field_names_field_and_valid_values(tmp_path: Path, field: str, value: object, valid: str) -> None:
    spec = JobSpec(source_directory=tmp_path, command="true", **{field: value})
    with pytest.raises(SpecError) as err:
        spec.validate()
    assert err.value.field == field
    assert valid in str(err.value)


def test_missing_source_directory_and_script(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        JobSpec(source_directory=tmp_path / "nope", command="true").validate()
    assert err.value.field == "source_directory"
    with pytest.raises(SpecError) as err:
        JobSpec(source_directory=tmp_path, script="train.py").validate()
    assert err.value.field == "script" and "train.py" in str(err.value)


def test_bad_env_and_input_ids(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        JobSpec(source_directory=tmp_path, command="true", environment_variables={"1BAD": "x"}).validate()
    assert err.value.field == "environment_variables"
    with pytest.raises(SpecError) as err:
        JobSpec(source_directory=tmp_path, command="true", inputs={"not-an-id": {}}).validate()
    assert err.value.field == "inputs"


def test_to_dict_keeps_secret_names_only(tmp_path: Path) -> None:
    spec = JobSpec(source_directory=tmp_path, command="true", secrets={"API_KEY": "s3cr3t-value"})
    stored = spec.to_dict()
    assert stored["secrets"] == ["API_KEY"]
    assert "s3cr3t-value" not in json.dumps(stored)


@pytest.mark.parametrize("text,seconds", [("P7D", 7 * 86400), ("PT1H30M", 5400), ("PT45S", 45),
                                          ("1.02:00:00", 93600), ("00:10:00", 600)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_bad_duration_names_field() -> None:
    with pytest.raises(SpecError) as err:
        parse_duration("soon")
    assert err.value.field == "constraints.maxWallClockTime"


def _job_json(tmp_path: Path, props: dict, wrap: bool = True) -> Path:
    (tmp_path / "train.py").write_text("print('hi')\n")
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"properties": props} if wrap else props))
    return path


def test_batchai_pytorch_job(tmp_path: Path) -> None:
    path = _job_json(tmp_path, {
        "nodeCount": 2, "schedulingPriority": "high",
        "jobPreparation": {"commandLine": "echo prep"},
        "environmentVariables": [{"name": "SEED", "value": "1"}],
        "secrets": [{"name": "TOKEN", "value": "t0k"}],
        "constraints": {"maxWallClockTime": "PT2H"},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/logs",
        "pyTorchSettings": {"pythonScriptFilePath": "train.py", "commandLineArgs": "--epochs 3 --lr 0.1",
                            "processCount": 4, "communicationBackend": "gloo"},
    })
    spec = JobSpec.from_batchai_json(path)
    assert spec.node_count == 2 and spec.process_count_per_node == 2
    assert spec.distribution == "pytorch" and spec.communication_backend == "gloo"
    assert spec.arguments == ["--epochs", "3", "--lr", "0.1"]
    assert spec.priority == "high" and spec.max_wall_clock_seconds == 7200
    assert spec.job_preparation == "echo prep"
    assert spec.environment_variables == {"SEED": "1"} and spec.secrets == {"TOKEN": "t0k"}
    assert Path(spec.source_directory) == tmp_path


def test_batchai_custom_toolkit_and_unwrapped(tmp_path: Path) -> None:
    path = _job_json(tmp_path, {"nodeCount": 1, "customToolkitSettings": {"commandLine": "echo hi"}},
                     wrap=False)
    spec = JobSpec.from_batchai_json(path)
    assert spec.command == "echo hi" and spec.master_only


def test_batchai_tensorflow_and_mpi(tmp_path: Path) -> None:
    path = _job_json(tmp_path, {"nodeCount": 2, "tensorFlowSettings": {
        "pythonScriptFilePath": "train.py", "masterCommandLineArgs": "--m", "workerCommandLineArgs": "--w",
        "parameterServerCommandLineArgs": "--p", "workerCount": 2, "parameterServerCount": 1}})
    spec = JobSpec.from_batchai_json(path)
    assert spec.distribution == "tensorflow" and spec.worker_count == 2 and spec.parameter_server_count == 1
    assert spec.tensorflow_arguments == {"master": ["--m"], "worker": ["--w"], "ps": ["--p"]}
    path = _job_json(tmp_path, {"nodeCount": 2, "customMpiSettings": {"commandLine": "python train.py",
                                                                      "processCount": 2}})
    spec = JobSpec.from_batchai_json(path)
    assert spec.distribution == "mpi" and spec.process_count_per_node == 1


@pytest.mark.parametrize("props,field", [
    ({"nodeCount": 1}, "toolkit settings"),
    ({"nodeCount": 1, "customToolkitSettings": {}}, "customToolkitSettings.commandLine"),
    ({"nodeCount": 2, "pyTorchSettings": {"pythonScriptFilePath": "train.py", "processCount": 3}},
     "pyTorchSettings.processCount"),
    ({"nodeCount": 1, "customToolkitSettings": {"commandLine": "x"}, "bogus": 1}, "bogus"),
    ({"nodeCount": 1, "customToolkitSettings": {"commandLine": "x"},
      "environmentVariables": [{"name": "A"}]}, "environmentVariables[0].value"),
    ({"nodeCount": 1, "customToolkitSettings": {"commandLine": "x"},
      "constraints": {"maxWallClockTime": "forever"}}, "constraints.maxWallClockTime"),
])
def test_malformed_job_json(tmp_path: Path, props: dict, field: str) -> None:
    with pytest.raises(SpecError) as err:
        JobSpec.from_batchai_json(_job_json(tmp_path, props))
    assert err.value.field == field


def test_job_json_not_json(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text("{ nope")
    with pytest.raises(SpecError) as err:
        JobSpec.from_batchai_json(path)
    assert err.value.field == "job.json" and "not valid JSON" in str(err.value)


def test_stored_spec_is_versioned_and_reads_back(tmp_path: Path) -> None:
    spec = JobSpec(source_directory=tmp_path, script="train.py", arguments=["--lr", 0.1],
                   node_count=2, priority="high", secrets={"TOKEN": "t"})
    stored = spec.to_dict()
    assert stored["spec_version"] == SPEC_VERSION == 1
    back = JobSpec.from_dict(json.loads(json.dumps(stored)))
    assert (back.node_count, back.priority, back.arguments) == (2, "high", ["--lr", "0.1"])
    assert back.secret_names == ["TOKEN"] and back.priority_rank == PRIORITIES["high"]
    assert back.to_dict() == stored


def test_from_dict_reads_old_rows_and_refuses_newer_ones() -> None:
    old = {"command": "true", "node_count": None, "max_wall_clock_seconds": None, "gone_field": 1,
           "secrets": ["A"], "inputs": {"D": {"datastore": "s", "path": "p", "mode": "download"}}}
    spec = JobSpec.from_dict(old)  # a row from before spec_version: defaults fill the nulls
    assert spec.node_count == DEFAULT_NODE_COUNT and spec.max_wall_clock_seconds == DEFAULT_WALL_CLOCK
    assert spec.priority == DEFAULT_PRIORITY and spec.secrets == {"A": ""} and spec.has_data
    assert spec.process_count() == 1 and not JobSpec(command="x").has_data
    with pytest.raises(SpecError) as err:
        JobSpec.from_dict({"spec_version": SPEC_VERSION + 1, "command": "true"})
    assert err.value.field == "spec_version" and "newer" in str(err.value)
    with pytest.raises(SpecError):
        JobSpec.from_dict({"spec_version": "one"})
    assert JobSpec.defaults()["max_wall_clock_seconds"] == DEFAULT_WALL_CLOCK == 7 * 24 * 3600

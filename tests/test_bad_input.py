"""Bad input gets a typed SpecError naming the field, before anything is stored or runs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.errors import SpecError
from batchai_jupyter.submission import check_experiment_name, submit


def _ids(cases: list[tuple[dict[str, Any], str]]) -> list[str]:
    return [f"{field}-{i}" for i, (_kwargs, field) in enumerate(cases)]


SPEC_CASES: list[tuple[dict[str, Any], str]] = [
    ({"command": 123}, "command"),
    ({"command": "echo a\0b"}, "command"),
    ({"command": None, "script": 5}, "script"),
    ({"command": None, "script": "train.py", "arguments": [1, None]}, "arguments"),
    ({"arguments": "--epochs 2"}, "arguments"),
    ({"arguments": ["ok", b"bytes"]}, "arguments"),
    ({"arguments": ["a\0b"]}, "arguments"),
    ({"arguments": [True]}, "arguments"),
    ({"environment_variables": {"SEED": None}}, "environment_variables"),
    ({"environment_variables": {"SEED": "1\x002"}}, "environment_variables"),
    ({"environment_variables": ["SEED=1"]}, "environment_variables"),
    ({"environment_variables": {"SEED": ["1"]}}, "environment_variables"),
    ({"secrets": {"API_KEY": None}}, "secrets"),
    ({"secrets": {"API_KEY": "a\0b"}}, "secrets"),
    ({"secrets": "API_KEY=x"}, "secrets"),
    ({"source_directory": None}, "source_directory"),
    ({"source_directory": 42}, "source_directory"),
    ({"source_directory": "a\0b"}, "source_directory"),
    ({"job_preparation": ["pip install x"]}, "job_preparation"),
    ({"job_preparation": "pip\0"}, "job_preparation"),
    ({"node_count": 10_001}, "node_count"),
    ({"node_count": 10**12}, "node_count"),
    ({"process_count_per_node": 1025}, "process_count_per_node"),
    ({"process_count_per_node": "2"}, "process_count_per_node"),
    ({"distribution": "tensorflow", "worker_count": 10**6, "node_count": 10_000,
      "process_count_per_node": 1024}, "worker_count"),
    ({"distribution": "tensorflow", "worker_count": 1, "parameter_server_count": 10**6, "node_count": 10_000,
      "process_count_per_node": 1024}, "parameter_server_count"),
    ({"inputs": ["DATASET"]}, "inputs"),
    ({"outputs": "MODEL"}, "outputs"),
    ({"mounts": None}, "mounts"),
    ({"master_only": "yes"}, "master_only"),
    ({"python_interpreter": 3}, "python_interpreter"),
]


def _spec(tmp_path: Path, **kwargs: Any) -> JobSpec:
    (tmp_path / "train.py").write_text("print('hi')\n")
    base: dict[str, Any] = {"source_directory": str(tmp_path), "command": "true"}
    base.update(kwargs)
    return JobSpec(**base)


@pytest.mark.parametrize(("kwargs", "field"), SPEC_CASES, ids=_ids(SPEC_CASES))
def test_jobspec_validate_names_the_bad_field(tmp_path: Path, kwargs: dict[str, Any], field: str) -> None:
    spec = _spec(tmp_path, **kwargs)
    with pytest.raises(SpecError) as err:
        spec.validate()
    assert err.value.field == field
    if field == "secrets":  # a bad secret's value is never shown
        assert "API_KEY=x" not in str(err.value) and "a\0b" not in str(err.value)


CLUSTER_CASES: list[tuple[dict[str, Any], str]] = [
    ({"max_nodes": 10_001}, "max_nodes"),
    ({"max_nodes": 10**9}, "max_nodes"),
    ({"max_nodes": "4"}, "max_nodes"),
    ({"max_nodes": 4, "min_nodes": -1}, "min_nodes"),
    ({"max_nodes": 4, "min_nodes": 5}, "min_nodes"),
    ({"max_nodes": 4, "gpus_per_node": 1.5}, "gpus_per_node"),
    ({"max_nodes": 4, "idle_seconds_before_scaledown": None}, "idle_seconds_before_scaledown"),
]


@pytest.mark.parametrize(("kwargs", "field"), CLUSTER_CASES, ids=_ids(CLUSTER_CASES))
def test_create_cluster_names_the_bad_field(ws: bai.Workspace, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        ws.create_cluster("bad", backend="local", **kwargs)
    assert err.value.field == field
    assert [c.name for c in ws.clusters()] == ["local"]  # nothing stored


def test_cluster_update_is_bounded_too(ws: bai.Workspace) -> None:
    with pytest.raises(SpecError) as err:
        ws.cluster("local").update(max_nodes=10_001)
    assert err.value.field == "max_nodes" and ws.cluster("local").max_nodes == 2


SUBMIT_CASES: list[tuple[dict[str, Any], str]] = [
    ({"experiment": "x" * 201}, "experiment"),
    ({"experiment": "."}, "experiment"),
    ({"experiment": ".."}, "experiment"),
    ({"experiment": "a/b"}, "experiment"),
    ({"experiment": 7}, "experiment"),
    ({"tags": ["lr"]}, "tags"),
    ({"tags": {"lr": 0.1}}, "tags"),
    ({"tags": {"lr": None}}, "tags"),
    ({"tags": {1: "a"}}, "tags"),
    ({"spec": {"node_count": 3}}, "node_count"),           # more than max_nodes=2 of `local`
    ({"spec": {"arguments": [1, None]}}, "arguments"),
    ({"spec": {"command": 123}}, "command"),
    ({"spec": {"source_directory": None}}, "source_directory"),
    ({"spec": {"environment_variables": {"A": None}}}, "environment_variables"),
]


@pytest.mark.parametrize(("kwargs", "field"), SUBMIT_CASES, ids=_ids(SUBMIT_CASES))
def test_submit_names_the_bad_field_and_stores_nothing(ws: bai.Workspace, tmp_path: Path,
                                                       kwargs: dict[str, Any], field: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    spec = _spec(src, **kwargs.get("spec", {}))
    with pytest.raises(SpecError) as err:
        submit(ws, kwargs.get("experiment", "e"), spec, tags=kwargs.get("tags"))
    assert err.value.field == field
    assert ws.history.run_rows() == []
    assert not ws.secrets.values()


def test_numbers_as_arguments_and_env_values_are_accepted_as_strings(tmp_path: Path) -> None:
    spec = _spec(tmp_path, command=None, script="train.py", arguments=[1, 2.5, "x"],
                 environment_variables={"SEED": 1}).validate()
    assert spec.to_dict()["arguments"] == ["1", "2.5", "x"]
    assert check_experiment_name("a" * 200) == "a" * 200

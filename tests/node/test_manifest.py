"""RunManifest: the one value the engine hands a node agent, and its JSON form."""
from __future__ import annotations

import json

import pytest

from batchai_jupyter.node.manifest import (
    DEFAULT_KILL_GRACE_SECONDS,
    MANIFEST_VERSION,
    ManifestError,
    ManifestNode,
    ManifestSnapshot,
    RunManifest,
    data_config,
)
from batchai_jupyter.spec import JobSpec

from .helpers import make_manifest

DATA = {"run_id": "r1", "inputs": {"X": {"datastore": "ds", "path": "in", "mode": "download", "name": "ds",
                                        "kind": "local", "config": {"root": "/d"}, "credential": None}},
        "outputs": {}, "mounts": {}}


def test_round_trip_keeps_every_field() -> None:
    m = make_manifest(spec={"distribution": "pytorch", "secrets": {"TOKEN": "x"},
                            "environment_variables": {"A": "1"}},
                      snapshot=ManifestSnapshot(files={"train.py": ("ab" * 32, 12, 0o644)},
                                                links={"l": "train.py"}),
                      secrets={"TOKEN": "s3cret"}, shared_dir="/shared", kill_grace_seconds=2.5,
                      data=data_config(DATA))
    back = RunManifest.from_json(m.to_json())
    assert back.to_dict() == m.to_dict()
    assert back.version == MANIFEST_VERSION == 2
    assert back.nodes[1] == ManifestNode(id="n1", address="10.200.9.3", gpus=0, gpu_ids=[], root="/nodes/n1")
    assert back.snapshot.files == {"train.py": ("ab" * 32, 12, 0o644)} and back.snapshot.links == {"l": "train.py"}
    assert isinstance(back.spec, JobSpec) and back.spec.distribution == "pytorch"
    assert back.spec.secrets == {"TOKEN": ""}  # the spec carries secret names only
    assert back.secrets == {"TOKEN": "s3cret"} and back.kill_grace_seconds == 2.5
    assert back.data == data_config(DATA) and back.data["inputs"]["X"]["kind"] == "local"
    assert back.paths.run_dir == "/nodes/n0/runs/r1" and back.node.id == "n0" and back.multi_node


def test_defaults_live_in_the_dataclass() -> None:
    m = make_manifest()
    raw = json.loads(m.to_json())
    del raw["kill_grace_seconds"], raw["version"], raw["run_key"]
    back = RunManifest.from_json(json.dumps(raw))
    assert back.kill_grace_seconds == DEFAULT_KILL_GRACE_SECONDS == 10.0
    assert back.version == 1 and back.secrets == {} and back.data is None
    assert back.run_key == "r1"  # a manifest without run_key: the folder is the run id


def test_secrets_and_credentials_do_not_stay_on_disk() -> None:
    m = make_manifest(secrets={"TOKEN": "s3cret"}, data=data_config(DATA))
    text = m.without_secrets().to_json()
    assert "s3cret" not in text and "data" not in json.loads(text) and "secrets" not in json.loads(text)
    assert RunManifest.from_json(text).secrets == {}


def test_a_newer_manifest_is_refused_with_the_reason() -> None:
    raw = json.loads(make_manifest().to_json())
    raw["version"] = MANIFEST_VERSION + 1
    with pytest.raises(ManifestError, match="version 3 is newer than this node's batchai_jupyter"):
        RunManifest.from_json(json.dumps(raw))
    raw["version"] = "1"
    with pytest.raises(ManifestError, match="is not a manifest version"):
        RunManifest.from_json(json.dumps(raw))


def test_a_broken_manifest_names_what_is_wrong() -> None:
    raw = json.loads(make_manifest().to_json())
    del raw["nodes"]
    with pytest.raises(ManifestError, match="field 'nodes' is missing"):
        RunManifest.from_json(json.dumps(raw))
    with pytest.raises(ManifestError, match="not JSON"):
        RunManifest.from_json("{")
    with pytest.raises(ManifestError, match="a JSON object expected"):
        RunManifest.from_json("[]")
    raw = json.loads(make_manifest().to_json())
    raw["spec"]["spec_version"] = 99
    with pytest.raises(ManifestError, match="its spec cannot be read here"):
        RunManifest.from_json(json.dumps(raw))


def test_the_engine_side_values_convert() -> None:
    """What the engine has (NodeInfo fields, the snapshot store's dict) becomes the typed parts."""
    node = ManifestNode.from_dict({"id": "n0", "address": "h", "gpus": 2, "gpu_ids": [0, 1], "root": "/r"})
    assert node.gpu_ids == ["0", "1"] and node.gpus == 2
    snap = ManifestSnapshot.from_dict({"files": {"a.py": ["d" * 64, 3, 420]}, "links": {}})
    assert snap.files["a.py"] == ("d" * 64, 3, 420)
    assert snap.to_dict() == {"files": {"a.py": ["d" * 64, 3, 420]}, "links": {}}
    assert data_config({"run_id": "r", "inputs": {}}) == {"run_id": "r", "inputs": {}, "outputs": {},
                                                          "mounts": {}}

"""Registered models: versions per name, ws.models(), Model(ws, name, version).download(), from
a run on the client, from a local path, and the typed errors of bad names and versions."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec, ModelNotFound, RunActive, SpecError


def _trainer(tmp_path: Path) -> Path:
    src = tmp_path / "m"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent("""
        import os, sys
        os.makedirs("outputs/weights", exist_ok=True)
        with open("outputs/model.txt", "w") as fh:
            fh.write("weights " + sys.argv[1])
        with open("outputs/weights/layer1.bin", "wb") as fh:
            fh.write(b"\\x00\\x01")
    """))
    return src


def test_versions_listing_and_download(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _trainer(tmp_path)
    runs = []
    for tag in ("a", "b"):
        run = ws.experiment("m").submit(JobSpec(source_directory=src, script="train.py", arguments=[tag]))
        run.wait_for_completion()
        runs.append(run)
    first = runs[0].register_model("clf", "outputs/model.txt", tags={"data": "v1"}, description="first")
    second = runs[1].register_model("clf", "outputs/model.txt")
    folder = runs[1].register_model("layers", "outputs/weights", properties={"format": "bin"})
    assert (first.version, second.version, folder.version) == (1, 2, 1)
    assert [(m.name, m.version) for m in ws.models()] == [("clf", 1), ("clf", 2), ("layers", 1)]
    assert [m.version for m in ws.models(name="clf")] == [1, 2]

    latest = bai.Model(ws, "clf")
    assert latest == second and latest.run_id == runs[1].id and latest.run == runs[1]
    old = bai.Model(ws, "clf", version=1)
    assert old.tags == {"data": "v1"} and old.description == "first"
    assert Path(old.download(tmp_path / "dl1")).read_text() == "weights a"
    assert Path(latest.download(tmp_path / "dl2")).read_text() == "weights b"
    with pytest.raises(SpecError, match="exist_ok"):
        old.download(tmp_path / "dl1")
    assert Path(old.download(tmp_path / "dl1", exist_ok=True)).read_text() == "weights a"
    got = Path(bai.Model(ws, "layers").download(tmp_path / "dl3"))
    assert got.name == "weights" and (got / "layer1.bin").read_bytes() == b"\x00\x01"
    assert bai.Model(ws, "layers").properties == {"format": "bin"}

    # the run's files stay where they were: a model is a copy
    runs[0].delete()
    assert Path(bai.Model(ws, "clf", 1).download(tmp_path / "dl4")).read_text() == "weights a"


def test_bad_names_versions_and_paths(ws: bai.Workspace, tmp_path: Path) -> None:
    run = ws.experiment("m").submit(JobSpec(source_directory=_trainer(tmp_path), script="train.py",
                                            arguments=["x"]))
    with pytest.raises(RunActive):
        run.register_model("early", "outputs/model.txt")
    run.wait_for_completion()
    with pytest.raises(SpecError, match="model_name"):
        run.register_model("no spaces allowed", "outputs/model.txt")
    with pytest.raises(SpecError, match="model_path"):
        run.register_model("clf", "outputs/missing.txt")
    with pytest.raises(SpecError, match="model_path"):
        run.register_model("clf", "../../secrets.json")
    with pytest.raises(ModelNotFound, match="registered models: none"):
        bai.Model(ws, "clf")
    run.register_model("clf", "outputs/model.txt")
    with pytest.raises(ModelNotFound, match=r"no version 3 \(versions: 1\)"):
        bai.Model(ws, "clf", version=3)
    assert ws.models(name="other") == []


def test_register_a_local_path(ws: bai.Workspace, tmp_path: Path) -> None:
    (tmp_path / "local.onnx").write_bytes(b"onnx")
    model = bai.Model.register(ws, tmp_path / "local.onnx", "onnx-model", tags={"k": 1})
    assert (model.version, model.run_id, model.tags) == (1, None, {"k": "1"})
    assert Path(model.download(tmp_path / "out")).read_bytes() == b"onnx"
    with pytest.raises(SpecError, match="model_path"):
        bai.Model.register(ws, tmp_path / "nope", "onnx-model")
    assert [m.version for m in ws.models("onnx-model")] == [1]

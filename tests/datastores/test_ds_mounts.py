"""Mounts at $AZ_BATCHAI_JOB_MOUNT_ROOT/<name>, and staging failures that fail the run clearly."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import batchai_jupyter as bai

from .conftest import KEY, register


def _script(tmp_path: Path, body: str) -> Path:
    src = tmp_path / "job"
    src.mkdir(exist_ok=True)
    (src / "main.py").write_text(body)
    return src


def test_local_datastore_is_linked_under_the_mount_root(ws, tmp_path: Path) -> None:
    share = tmp_path / "nfs"
    (share / "data").mkdir(parents=True)
    (share / "data" / "x.txt").write_text("on the share")
    ws.register_datastore("nfs", kind="local", path=str(share))
    src = _script(tmp_path, (
        "import os\n"
        "root = os.environ['AZ_BATCHAI_JOB_MOUNT_ROOT']\n"
        "print(open(os.path.join(root, 'shared', 'data', 'x.txt')).read())\n"
        "print(open(os.path.join(os.environ['AZ_BATCHAI_INPUT_IN'], 'x.txt')).read().upper())\n"
        "open(os.path.join(root, 'shared', 'written-by-job.txt'), 'w').write('hello')\n"))
    ds = ws.datastore("nfs")
    run = ws.experiment("mnt").submit(bai.JobSpec(
        source_directory=src, script="main.py", mounts={"shared": ds},
        inputs={"IN": ds.path("data").as_mount()}))
    run.wait_for_completion(show_output=False, timeout=120)
    out = "".join(run.stream(follow=False))
    assert "on the share" in out and "ON THE SHARE" in out
    assert (share / "written-by-job.txt").read_text() == "hello"  # a mount writes through


@pytest.mark.skipif(shutil.which("blobfuse2") is not None, reason="blobfuse2 is installed here")
@pytest.mark.parametrize("kind", ["azure_blob", "azure_file"])
def test_azure_mount_without_fuse_fails_the_run_suggesting_as_download(ws, request, tmp_path: Path,
                                                                       kind: str) -> None:
    store = register(ws, kind, request, tmp_path)
    src = _script(tmp_path, "print('never runs')\n")
    run = ws.experiment("mnt").submit(bai.JobSpec(source_directory=src, script="main.py",
                                                  mounts={"data": store}))
    run.wait_for_completion(show_output=False, timeout=120, raise_on_error=False)
    assert run.status == "Failed"
    message = run.get_details()["error"]["message"]
    assert "as_download()" in message and store.name in message and KEY not in message
    assert "never runs" not in "".join(run.stream(follow=False))


def test_missing_input_fails_the_run_and_outputs_are_still_uploaded(ws, tmp_path: Path) -> None:
    ds = ws.get_default_datastore()
    src = _script(tmp_path, "print('never runs')\n")
    (src / "results").mkdir()
    (src / "results" / "earlier.txt").write_text("kept")  # already in the output folder
    run = ws.experiment("mnt").submit(bai.JobSpec(
        source_directory=src, script="main.py", inputs={"DATA": ds.path("no/such/folder")},
        outputs={"OUT": ds.path("out").as_upload(path_on_compute="results")}))
    run.wait_for_completion(show_output=False, timeout=120, raise_on_error=False)
    assert run.status == "Failed"
    assert "no/such/folder" in run.get_details()["error"]["message"]
    assert ds.list("out/") == [f"out/{run.id}/earlier.txt"]  # staging failed, outputs went up


def test_every_node_uploads_its_outputs(ws, tmp_path: Path) -> None:
    ds = ws.get_default_datastore()
    src = _script(tmp_path, (
        "import os\n"
        "out = os.environ['AZ_BATCHAI_OUTPUT_OUT']\n"
        "node = os.environ['BATCHAI_NODE_INDEX']\n"
        "open(os.path.join(out, f'node-{node}.txt'), 'w').write(node)\n"))
    run = ws.experiment("mnt").submit(bai.JobSpec(source_directory=src, script="main.py", node_count=2,
                                                  outputs={"OUT": ds.path("multi").as_upload()}))
    run.wait_for_completion(show_output=False, timeout=120)
    assert ds.list("multi/") == [f"multi/{run.id}/node-0.txt", f"multi/{run.id}/node-1.txt"]

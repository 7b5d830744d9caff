"""Mounts at $AZ_BATCHAI_JOB_MOUNT_ROOT/<name> (folders, rclone FUSE mounts, staged volumes), and
staging failures that fail the run clearly."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.datastores.mount_mode import fuse_available

from .conftest import KEY, register

PYTHON_BIN = os.path.dirname(sys.executable)


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


_WRITER = (
    "import os, sys\n"
    "root = os.path.join(os.environ['AZ_BATCHAI_JOB_MOUNT_ROOT'], 'data')\n"
    "print('read:', open(os.path.join(root, 'seen.txt')).read())\n"
    "os.makedirs(os.path.join(root, 'made'), exist_ok=True)\n"
    "open(os.path.join(root, 'made', 'by-job.txt'), 'w').write('written through the volume')\n"
    "open(os.path.join(root, 'seen.txt'), 'w').write('changed by the job')\n"
    "ro = os.environ['AZ_BATCHAI_INPUT_RO']\n"
    "try:\n"
    "    open(os.path.join(ro, 'nope.txt'), 'w').write('x')\n"
    "    print('read-only input took a write')\n"
    "except OSError:\n"
    "    print('read-only input refused a write')\n")


def _mount_job(ws, request, tmp_path: Path, kind: str):
    store = register(ws, kind, request, tmp_path)
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "seen.txt").write_text("there before")
    (tmp_path / "seed" / "ro").mkdir()
    (tmp_path / "seed" / "ro" / "x.txt").write_text("input")
    store.upload(tmp_path / "seed", show_progress=False)
    src = _script(tmp_path, _WRITER)
    spec = bai.JobSpec(source_directory=src, script="main.py", mounts={"data": store},
                       inputs={"RO": store.path("ro").as_mount()})
    return store, spec


@pytest.mark.skipif(fuse_available(os.pathsep.join([PYTHON_BIN, os.environ.get("PATH", "")])) is not None,
                    reason="no FUSE mounts here (/dev/fuse, fusermount3 or rclone missing)")
@pytest.mark.parametrize("kind", ["azure_blob", "azure_file"])
def test_azure_volume_is_a_real_fuse_mount_and_writes_are_in_storage_when_final(
        ws, request, tmp_path: Path, kind: str) -> None:
    """Azure Blob on Azurite, Azure Files on the EMULATOR (its Set File Properties, Rename and
    Put Range carry rclone's writes; leases and SMB metadata are not emulated)."""
    store, spec = _mount_job(ws, request, tmp_path, kind)
    run = ws.experiment("mnt").submit(spec)
    run.wait_for_completion(show_output=False, timeout=120)
    assert run.get_details()["properties"]["mount_mode"] == "fuse"
    out = "".join(run.stream(follow=False))
    assert "read: there before" in out and "read-only input refused a write" in out
    assert "mounted with FUSE (rclone" in out  # said in the run's stream
    # final means flushed: no wait for rclone's write-back here
    assert set(store.list()) >= {"made/by-job.txt", "seen.txt"}
    got = tmp_path / "got"
    store.download(got, show_progress=False)
    assert (got / "made" / "by-job.txt").read_text() == "written through the volume"
    assert (got / "seen.txt").read_text() == "changed by the job"
    assert not (got / "ro" / "nope.txt").exists()
    # unmounted, rclone gone, its config (the SAS) deleted
    mounts = Path("/proc/mounts").read_text()
    assert str(ws.path) not in mounts
    assert not list(ws.path.glob(f"clusters/local/nodes/*/runs/{run.id}/rclone/*.conf"))
    assert not [pid for pid in _pids_named("rclone") if str(ws.path) in _cmdline(pid)]


@pytest.mark.parametrize("kind", ["azure_blob", "azure_file"])
def test_staged_volume_downloads_before_and_uploads_changes_after(ws, request, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  kind: str) -> None:
    monkeypatch.setenv("BATCHAI_MOUNT_MODE", "staged")  # what a node without FUSE gets
    store, spec = _mount_job(ws, request, tmp_path, kind)
    run = ws.experiment("mnt").submit(spec)
    run.wait_for_completion(show_output=False, timeout=120)
    props = run.get_details()["properties"]
    assert props["mount_mode"] == "staged" and "staged" in props["mount_mode_reason"]
    out = "".join(run.stream(follow=False))
    assert "read: there before" in out and "changes are uploaded after the job" in out
    got = tmp_path / "got"
    store.download(got, show_progress=False)
    assert (got / "made" / "by-job.txt").read_text() == "written through the volume"
    assert (got / "seen.txt").read_text() == "changed by the job"
    # a read-only (input) volume is only downloaded: what the job wrote there stays on the node
    assert not (got / "ro" / "nope.txt").exists()


def test_mount_mode_refuses_an_unknown_value(ws, request, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BATCHAI_MOUNT_MODE", "nfs")
    _store, spec = _mount_job(ws, request, tmp_path, "azure_blob")
    with pytest.raises(bai.SpecError) as err:
        ws.experiment("mnt").submit(spec)
    assert "mount_mode" in str(err.value) and "staged" in str(err.value)


def _pids_named(name: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


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


@pytest.mark.skipif(fuse_available(os.pathsep.join([PYTHON_BIN, os.environ.get("PATH", "")])) is not None,
                    reason="no FUSE mounts here (/dev/fuse, fusermount3 or rclone missing)")
@pytest.mark.parametrize("end", ["cancel", "failure"])
def test_fuse_volume_is_flushed_and_unmounted_on_cancel_and_failure(ws, request, tmp_path: Path,
                                                                    end: str) -> None:
    from tests.support import wait_until
    store = register(ws, "azure_blob", request, tmp_path)
    body = ("import os, sys, time\n"
            "root = os.path.join(os.environ['AZ_BATCHAI_JOB_MOUNT_ROOT'], 'data')\n"
            "open(os.path.join(root, 'partial.txt'), 'w').write('kept')\n"
            "print('wrote', flush=True)\n"
            + ("time.sleep(300)\n" if end == "cancel" else "sys.exit(3)\n"))
    run = ws.experiment("mnt").submit(bai.JobSpec(source_directory=_script(tmp_path, body), script="main.py",
                                                  mounts={"data": store}))
    if end == "cancel":
        assert wait_until(lambda: "wrote" in "".join(run.stream(follow=False)), timeout=60)
        rclone = [pid for pid in _pids_named("rclone") if str(ws.path) in _cmdline(pid)]
        assert rclone and not any("sig=" in _cmdline(pid) for pid in rclone)  # the SAS is not in argv
        assert not any(KEY in _cmdline(pid) for pid in rclone)  # nor the account key it came from
        assert not list(ws.path.glob("clusters/*/nodes/*/runs/*/rclone/*.conf"))  # read, then deleted
        run.cancel()
    run.wait_for_completion(show_output=False, timeout=120, raise_on_error=False)
    assert run.status == ("Canceled" if end == "cancel" else "Failed")
    assert store.list() == ["partial.txt"]  # what the job wrote before it ended is in storage
    assert str(ws.path) not in Path("/proc/mounts").read_text()
    assert not [pid for pid in _pids_named("rclone") if str(ws.path) in _cmdline(pid)]
    leaked = [p for p in ws.path.rglob("*") if p.is_file() and p.name != "secrets.json"
              and (b"sig=" in p.read_bytes() or KEY.encode() in p.read_bytes())]
    assert leaked == []  # no log, manifest or config left on disk holds a SAS or the key
    agent_logs = list(ws.path.glob(f"clusters/*/nodes/*/runs/{run.id}/agent.log"))
    assert agent_logs and all("rclone" in p.read_text() for p in agent_logs)  # the mount's log lines
    stream = "".join(run.stream(follow=False))
    assert "mounted with FUSE" in stream and "sig=" not in stream and KEY not in stream


def _account_missing(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return False
    except KeyError:
        return True


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None,
                    reason="needs root and useradd: only a root engine runs jobs as their own account")
@pytest.mark.skipif(fuse_available(os.pathsep.join([PYTHON_BIN, os.environ.get("PATH", "")])) is not None,
                    reason="no FUSE mounts here (/dev/fuse, fusermount3 or rclone missing)")
def test_a_job_running_as_its_clusters_account_reads_and_writes_its_fuse_volume(
        ws, request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """local run_as="auto" under a root engine: the volume is mounted for the job's account."""
    import subprocess

    from tests.conftest import session_tag
    from tests.support import reachable_python_venv
    cluster = f"isomnt-{session_tag()}"   # its account is machine-wide: another test run's is not ours
    monkeypatch.delenv("BATCHAI_LOCAL_RUN_AS", raising=False)
    store, spec = _mount_job(ws, request, tmp_path, "azure_blob")
    with reachable_python_venv() as python:
        made = _account_missing(f"batchai-{cluster}")
        ws.create_cluster(cluster, backend="local", max_nodes=1, python=python)
        try:
            run = ws.experiment("mnt").submit(spec, cluster=cluster)
            details = run.wait_for_completion(show_output=False, timeout=120, raise_on_error=False)
            assert details["status"] == "Completed", (details.get("error"), run.get_file_names())
            assert ws.cluster(cluster).nodes()[0].info["run_as"] == f"batchai-{cluster}"
            out = "".join(run.stream(follow=False))
            assert "read: there before" in out and "read-only input refused a write" in out
            got = tmp_path / "got"
            store.download(got, show_progress=False)
            assert (got / "made" / "by-job.txt").read_text() == "written through the volume"
        finally:
            from batchai_jupyter.compute.local.accounts import isolated_root
            from batchai_jupyter.engine.control import stop_engine
            stop_engine(ws.path)
            shutil.rmtree(isolated_root(ws.path, cluster).parent, ignore_errors=True)
            if made and not _account_missing(f"batchai-{cluster}"):
                subprocess.run(["userdel", f"batchai-{cluster}"], check=False, capture_output=True)

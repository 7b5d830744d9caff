"""A finished run's ./outputs reach the workspace without copying where they share a filesystem."""
from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.compute.transport import LocalTransport


def test_local_outputs_are_handed_over_by_rename_not_copied(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "write.py").write_text(textwrap.dedent("""
        import os
        os.makedirs("outputs/model", exist_ok=True)
        with open("outputs/model/weights.bin", "wb") as fh:
            fh.write(os.urandom(1 << 20))
        print(os.stat("outputs/model/weights.bin").st_ino)
    """))
    run = ws.experiment("out").submit(JobSpec(source_directory=src, script="write.py"))
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    inode = int(run.file_path(run.main_log()).read_text().split()[0])
    collected = run.file_path("outputs/model/weights.bin")
    assert collected.stat().st_size == 1 << 20
    assert collected.stat().st_ino == inode  # the job's own file, renamed into the workspace


def test_take_file_copies_across_filesystems(tmp_path: Path) -> None:
    """/dev/shm is another filesystem than the test's folder here: the file is copied, then kept."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        import pytest
        pytest.skip(reason="no second filesystem (/dev/shm) beside the temp folder")
    source = Path(shm / f"bai-take-{os.getpid()}")
    source.write_bytes(b"x" * 4096)
    try:
        LocalTransport().take_file(str(source), tmp_path / "a" / "b.bin")
        assert (tmp_path / "a" / "b.bin").read_bytes() == b"x" * 4096
    finally:
        source.unlink(missing_ok=True)


def test_an_overlay_view_is_volatile_so_a_run_never_waits_for_the_whole_disk(
        ws: bai.Workspace, tmp_path: Path) -> None:
    """Unmounting a plain overlay syncs the node's whole disk (the run's outputs and everything
    else written there): a run of 1 GiB of outputs ended 0.4 s after its job did."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "mounts.py").write_text(textwrap.dedent("""
        import os
        here = os.path.realpath(os.getcwd())
        with open("/proc/self/mountinfo") as fh:
            mine = [line for line in fh if line.split()[4] == here]
        print(mine[-1].split(" - ")[1].split()[-1] if mine else "no mount")
    """))
    run = ws.experiment("out").submit(JobSpec(source_directory=src, script="mounts.py"))
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    options = run.file_path(run.main_log()).read_text().strip()
    if options == "no mount":
        import pytest
        pytest.skip(reason="this node makes its views by reflink or copy (no overlay: not root)")
    kernel = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
    if kernel < (5, 10):
        import pytest
        pytest.skip(reason=f"kernel {os.uname().release} has no volatile overlays (5.10+)")
    assert {"volatile", "fsync=volatile"} & set(options.split(",")), options

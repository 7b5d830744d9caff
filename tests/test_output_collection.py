"""A finished run's ./outputs reach the workspace without copying where they share a filesystem."""
from __future__ import annotations

import os
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

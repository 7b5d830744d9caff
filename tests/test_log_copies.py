"""The engine's copies of a node's logs (engine/tail.py): whole, in order and only what grew,
between two folders of one filesystem (copied inside the kernel) or of two (through a buffer)."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.compute.base import NodeInfo
from batchai_jupyter.compute.transport import LocalTransport
from batchai_jupyter.engine.tail import RunTail
from batchai_jupyter.node.paths import RunPaths


@pytest.fixture(params=["same filesystem", "another filesystem"])
def node_root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    if request.param == "same filesystem":
        yield tmp_path / "node"
        return
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip(reason="no second filesystem (/dev/shm) beside the temp folder")
    root = shm / f"bai-node-{os.getpid()}"
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_a_growing_log_is_copied_whole_then_only_what_grew_and_anew_when_rewritten(
        ws: bai.Workspace, node_root: Path) -> None:
    paths = RunPaths(str(node_root), "r1")
    os.makedirs(paths.stdouterr)
    log = Path(paths.stdouterr, "stdout.txt")
    tail = RunTail(ws.history, "r1", ws.paths.run_files("r1"))
    transport, node = LocalTransport(), NodeInfo(id="n0", address=None, state="running")
    copy = ws.paths.run_files("r1") / "stdout.txt"

    first = b"".join(b"line %d\n" % i for i in range(400_000)) + b"half a li"  # ~5 MB
    log.write_bytes(first)
    tail.tail(transport, 0, node, paths)
    assert copy.read_bytes() == first

    with log.open("ab") as fh:
        fh.write(b"ne\nand more\n")
    before = copy.stat().st_ino
    tail.tail(transport, 0, node, paths)
    assert copy.read_bytes() == first + b"ne\nand more\n"
    assert copy.stat().st_ino == before  # appended to, not made again

    log.write_bytes(b"rewritten\n")  # shorter: the job started the file over
    tail.tail(transport, 0, node, paths)
    assert copy.read_bytes() == b"rewritten\n"

"""A failed run shows why: the failing process's last stderr lines (its traceback) in
wait_for_completion(show_output=True), `batchai job wait --stream`, get_details() and RunFailed."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec, RunFailed

PACKAGE = str(Path(bai.__file__).parent)


def _failing(tmp_path: Path) -> Path:
    src = tmp_path / "fail"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent("""
        import sys

        def load_batch(index):
            return [1, 2, 3][index]

        print("epoch 0 ok", flush=True)
        for step in range(2):
            print(f"noise line {step}", file=sys.stderr)
        load_batch(7)
    """))
    return src


def test_traceback_in_stream_details_and_run_failed(ws: bai.Workspace, tmp_path: Path) -> None:
    run = ws.experiment("f").submit(JobSpec(source_directory=_failing(tmp_path), script="train.py"))
    out = io.StringIO()
    with pytest.raises(RunFailed) as caught:
        run.wait_for_completion(show_output=True, out=out)
    text = out.getvalue()
    assert "epoch 0 ok" in text and "Status: Failed" in text
    summary = text[text.index("Execution Summary"):]
    assert "Traceback (most recent call last):" in summary
    assert "IndexError: list index out of range" in summary and "load_batch(7)" in summary
    assert summary.index("noise line 1") < summary.index("IndexError")

    error = run.get_details()["error"]
    assert error["exit_code"] == 1 and error["failed_process"]
    assert error["last_lines"][-1] == "IndexError: list index out of range"
    assert any("Traceback" in line for line in error["last_lines"])

    html = run._repr_html_()  # the static summary the widget ends with, and a saved notebook keeps
    assert "Failing process" in html and "IndexError: list index out of range" in html
    from batchai_jupyter.view.render import run_properties
    error_text = dict(run_properties(run.row()))["Error"]  # the widget's properties pane
    assert error_text.endswith("IndexError: list index out of range") and "exited with code 1" in error_text

    message = str(caught.value)
    assert "IndexError: list index out of range" in message and "Traceback" in message
    assert caught.value.run == run
    ours = [f for f in traceback.extract_tb(caught.value.__traceback__) if f.filename.startswith(PACKAGE)]
    assert len(ours) <= 1, ours  # the wait_for_completion frame, nothing of our internals
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_cli_job_wait_stream_prints_the_traceback(ws: bai.Workspace, tmp_path: Path) -> None:
    run = ws.experiment("f").submit(JobSpec(source_directory=_failing(tmp_path), script="train.py"))
    env = dict(os.environ, BATCHAI_WORKSPACE=str(ws.path))
    done = subprocess.run([sys.executable, "-m", "batchai_jupyter.cli", "job", "wait", "-j", run.id, "--stream"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert "epoch 0 ok" in done.stdout
    assert "Traceback (most recent call last):" in done.stdout
    assert "IndexError: list index out of range" in done.stdout

    # without --stream the reason goes to stderr, the status line to stdout
    done = subprocess.run([sys.executable, "-m", "batchai_jupyter.cli", "job", "wait", "-j", run.id],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and done.stdout.strip() == f"{run.id}: Failed"
    assert "IndexError: list index out of range" in done.stderr and "epoch 0 ok" not in done.stderr


def test_multi_node_mpi_failure_shows_the_ranks_traceback(ws: bai.Workspace, tmp_path: Path) -> None:
    """mpirun's own boxed messages come after the failed rank's traceback: they are left out of
    the tail, so RunFailed and the summary show the traceback (and which rank failed first)."""
    import shutil
    if shutil.which("mpirun") is None:
        pytest.skip(reason="mpirun (OpenMPI) is not installed")
    src = tmp_path / "mpi"
    src.mkdir()
    (src / "train.py").write_text(textwrap.dedent("""
        import os

        def shard(index):
            return [1, 2][index]

        def batch(index):
            return shard(index + 5)

        def epoch(index):
            return batch(index)

        def fit(rank):
            return epoch(rank)

        rank = int(os.environ["OMPI_COMM_WORLD_RANK"])
        print(f"rank {rank} started", flush=True)
        if rank == 1:
            fit(rank)
    """))
    ws.create_cluster("pair", max_nodes=2)
    run = ws.experiment("f").submit(JobSpec(source_directory=src, script="train.py", node_count=2,
                                            distribution="mpi"), cluster="pair")
    with pytest.raises(RunFailed) as caught:
        run.wait_for_completion(show_output=False, timeout=180)
    error = run.get_details()["error"]
    assert error["failed_process"] == "0:mpirun" and "MPI rank 1 failed first" in error["message"]
    lines = error["last_lines"]
    assert lines[0] == "Traceback (most recent call last):" and lines[-1] == "IndexError: list index out of range"
    assert any("fit(rank)" in line for line in lines) and not any("mpirun detected" in line for line in lines)
    message = str(caught.value)
    assert "Traceback (most recent call last):" in message and "return [1, 2][index]" in message

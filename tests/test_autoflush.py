"""Python jobs keep buffered stdout (fast prints) and still show each line while they run."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter import JobSpec


def _job(tmp_path: Path, body: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "job.py").write_text(textwrap.dedent(body))
    return src


def test_a_line_printed_without_flush_shows_while_the_job_still_runs(ws: bai.Workspace, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    src = _job(tmp_path, f"""
        import io, json, os, sys, time
        print(json.dumps({{"buffered": isinstance(sys.stdout.buffer, io.BufferedWriter),
                          "unbuffered_env": os.environ.get("PYTHONUNBUFFERED")}}))
        print("tick")                       # no flush, no newline-flush: stdout is a file here
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.02)
        sys.stdout.write("last words without a newline")
    """)
    run = ws.experiment("flush").submit(JobSpec(source_directory=src, script="job.py"))
    stream = run.stream()
    first = json.loads(next(stream))
    assert first == {"buffered": True, "unbuffered_env": None}   # the job's writes stay buffered
    assert next(stream) == "tick"                                 # ... and still arrive while it waits
    assert run.status == "Running"
    gate.write_text("go")
    assert list(stream) == ["last words without a newline"]       # flushed at exit, nothing lost
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"


def test_forked_children_are_flushed_and_the_shadowed_sitecustomize_still_runs(
        ws: bai.Workspace, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos.environ['USER_SITECUSTOMIZE_RAN'] = 'yes'\n")
    src = _job(tmp_path, f"""
        import os, sys, time
        print("site:", os.environ.get("USER_SITECUSTOMIZE_RAN"))
        pid = os.fork()
        if pid == 0:
            print("from the child")
            while not os.path.exists({str(gate)!r}):
                time.sleep(0.02)
            os._exit(0)                      # skips the child's final flush: the timer must have done it
        os.waitpid(pid, 0)
    """)
    run = ws.experiment("flush").submit(JobSpec(source_directory=src, script="job.py",
                                                environment_variables={"PYTHONPATH": str(site)}))
    stream = run.stream()
    assert next(stream) == "site: yes"
    assert next(stream) == "from the child"   # while the child waits: only the timer flushes it
    gate.write_text("go")
    assert list(stream) == []                 # the parent's line is not repeated by the child
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"


def test_the_flush_timer_can_be_turned_off(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _job(tmp_path, """
        import os, threading
        print(os.environ["BATCHAI_FLUSH_SECONDS"], [t.name for t in threading.enumerate()])
    """)
    on = ws.experiment("flush").submit(JobSpec(source_directory=src, script="job.py"))
    off = ws.experiment("flush").submit(JobSpec(source_directory=src, script="job.py",
                                                environment_variables={"BATCHAI_FLUSH_SECONDS": "0"}))
    assert "batchai-autoflush" in next(iter(on.stream()))
    assert list(off.stream()) == ["0 ['MainThread']"]


def test_a_fast_printer_loses_no_line_and_keeps_their_order(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _job(tmp_path, """
        import sys
        for i in range(300000):      # ~2 MB, written in large blocks between the timer's flushes
            print(i)
        sys.stderr.write("done\\n")
    """)
    run = ws.experiment("flush").submit(JobSpec(source_directory=src, script="job.py"))
    streamed = list(run.stream())
    assert run.wait_for_completion(timeout=120)["status"] == "Completed"
    expected = [str(i) for i in range(300000)]
    assert streamed == expected
    assert run.file_path("stdout.txt").read_text().splitlines() == expected

"""A requeued run is followed into its new attempt: streams, wait_for_completion and metrics."""
from __future__ import annotations

import io
import os
import signal
import sqlite3
import textwrap
import threading
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.history import RunHistory
from tests.support import process_gone, wait_until

pytestmark = pytest.mark.timeout(180)


def _counter_job(folder: Path, gate: Path, lines: int = 40) -> Path:
    """Prints and logs `line i` / i; after line 5 it waits for the gate file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "count.py").write_text(textwrap.dedent(f"""
        import os, sys, time
        from batchai_jupyter import Run
        run = Run.get_context()
        for i in range({lines}):
            print(f"line {{i}}", flush=True)
            print(f"err {{i}}", file=sys.stderr, flush=True)
            run.log("i", i)
            if i == 5:
                while not os.path.exists({str(gate)!r}):
                    time.sleep(0.02)
            time.sleep(0.01)
    """))
    return folder


def _kill_agent(ws: bai.Workspace, run: bai.Run) -> None:
    """SIGKILL the run's agent on its (local) node, as a lost node would end it."""
    node = run.get_details()["nodes"][0]
    run_dir = Path(ws.paths.node_dir("local", node)) / "runs" / run.id
    agent = int((run_dir / "agent.started").read_text())
    os.kill(agent, signal.SIGKILL)
    assert wait_until(lambda: process_gone(agent), 10)


def test_stream_wait_and_metrics_follow_the_requeued_attempt(
        ws: bai.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "2")
    gate = tmp_path / "gate"
    run = ws.experiment("rq").submit(JobSpec(source_directory=_counter_job(tmp_path / "src", gate),
                                             script="count.py"))
    shown = io.StringIO()
    waiter = threading.Thread(target=run.wait_for_completion,
                              kwargs={"show_output": True, "timeout": 120, "out": shown}, daemon=True)
    waiter.start()
    stream = run.stream()
    assert [next(stream) for _ in range(6)] == [f"line {i}" for i in range(6)]
    _kill_agent(ws, run)  # the node is lost under the run: it is requeued
    assert wait_until(lambda: run.attempt == 1, 30)
    gate.write_text("go")
    rest = list(stream)
    assert len(rest) == 41 and rest[1:] == [f"line {i}" for i in range(40)], rest
    assert rest[0].startswith("--- attempt 2 (requeued: ") and "lost" in rest[0], rest[0]
    waiter.join(60)
    assert not waiter.is_alive()
    printed = shown.getvalue().splitlines()
    banner = printed.index(rest[0])
    assert printed[banner - 6:banner] == [f"line {i}" for i in range(6)]
    assert printed[banner + 1:banner + 41] == [f"line {i}" for i in range(40)]
    assert "Status: Completed" in printed
    # metrics belong to the attempt that ran to the end; the abandoned one's stay readable
    assert run.get_metrics()["i"] == list(range(40))
    assert run.get_metrics("i")["i"] == list(range(40))
    assert run.get_metrics(attempt=0)["i"] == list(range(6))
    assert run.get_metrics(attempt=1) == run.get_metrics()
    # a stream started after the run ended reads the final attempt only
    assert list(run.stream()) == [f"line {i}" for i in range(40)]


def test_a_stream_that_never_opened_the_abandoned_file_reads_its_renamed_copy(
        ws: bai.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked before the requeue, read after it: the old attempt's lines come from attempt-<n>/."""
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "2")
    gate = tmp_path / "gate"
    run = ws.experiment("rq").submit(JobSpec(source_directory=_counter_job(tmp_path / "src", gate),
                                             script="count.py"))
    errors = run.stream("stderr.txt")  # asked now, not read until the run was requeued
    stderr = Path(run.files_dir, "stderr.txt")
    assert wait_until(lambda: stderr.exists() and stderr.read_text().count("\n") >= 6, 60)
    _kill_agent(ws, run)
    assert wait_until(lambda: run.attempt == 1, 30)
    gate.write_text("go")
    assert list(run.stream("stdout.txt")) == [f"line {i}" for i in range(40)]  # asked after it
    got = list(errors)
    assert got[:6] == [f"err {i}" for i in range(6)] and got[7:] == [f"err {i}" for i in range(40)], got
    assert got[6].startswith("--- attempt 2 (requeued: "), got


def test_an_old_history_db_gets_the_attempt_column(tmp_path: Path) -> None:
    """A database made before metrics had attempts: its rows become attempt 0, new ones count."""
    path = tmp_path / "history.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE metrics(seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, "
                   "name TEXT NOT NULL, kind TEXT NOT NULL, step INTEGER, value TEXT NOT NULL, "
                   "ts REAL NOT NULL)")
        db.execute("INSERT INTO metrics(run_id, name, kind, step, value, ts) "
                   "VALUES('r1', 'loss', 'scalar', 0, '0.5', 1.0)")
    history = RunHistory(path)
    history.insert_run("r1", "e", "local", {}, None, {}, 1, properties={"attempt": 1})
    history.record_metrics("r1", "n0", "metrics.jsonl", 10, [{"name": "loss", "value": 0.25}], attempt=1)
    assert [r["value"] for r in history.metric_rows(["r1"], attempt=0)] == [0.5]
    assert [r["value"] for r in history.metric_rows(["r1"], attempt=1)] == [0.25]
    assert [r["value"] for r in history.metric_rows(["r1"])] == [0.5, 0.25]
    history.close()
    again = RunHistory(path)  # opened again: nothing to migrate
    assert [r["attempt"] for r in again.metric_rows(["r1"])] == [0, 1]
    again.close()


def test_the_widget_follows_the_new_attempt_and_charts_its_metrics_only(
        ws: bai.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batchai_jupyter.notebook.widget import RunDetails
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "2")
    gate = tmp_path / "gate"
    run = ws.experiment("rq").submit(JobSpec(source_directory=_counter_job(tmp_path / "src", gate),
                                             script="count.py"))
    view = RunDetails(run, poll_seconds=0.05)
    try:
        assert wait_until(lambda: view.log_text.count("\n") >= 6, 60), view.log_text
        _kill_agent(ws, run)
        assert wait_until(lambda: view.log_text.startswith("--- attempt 2 (requeued: "), 30), view.log_text
        gate.write_text("go")
        assert view.wait(120)
        lines = view.log_text.splitlines()
        assert lines[1:] == [f"line {i}" for i in range(40)], lines[:8]  # no line of attempt 1 mixed in
        steps = [value for _step, value in view._metrics.series["i"]]
        assert steps == list(range(40))                                   # one attempt's series
    finally:
        view.stop()


def test_children_are_compared_by_their_final_attempt(tmp_path: Path) -> None:
    history = RunHistory(tmp_path / "history.db")
    for run_id in ("a", "b"):
        history.insert_run(run_id, "e", "local", {}, None, {}, 1)
    for run_id, attempt, value in (("a", 0, 0.99), ("a", 1, 0.10), ("b", 0, 0.50)):
        history.record_metrics(run_id, "node-0", f"metrics-{attempt}.jsonl", 1,
                               [{"name": "acc", "kind": "scalar", "value": value, "step": 0}], attempt=attempt)
    assert history.last_metric_values(["a", "b"], "acc") == {"a": 0.10, "b": 0.50}

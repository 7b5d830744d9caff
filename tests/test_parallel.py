"""Parallel runs (bai.ParallelRunConfig): workers on several nodes and processes pull
mini-batches from one queue; every batch's rows land once; failures, retries, thresholds."""
from __future__ import annotations

import csv
import json
import os
import signal
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from tests.support import wait_until

SCORE = textwrap.dedent("""
    import os, socket
    STATE = {}
    def init():
        STATE["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    def run(mini_batch):
        if BAD in mini_batch:
            raise ValueError(f"cannot score item {BAD}")
        return [{"item": i, "square": i * i, "worker": STATE["worker"]} for i in mini_batch]
""")


@pytest.fixture
def score(tmp_path: Path) -> Path:
    folder = tmp_path / "score"
    folder.mkdir()
    (folder / "score.py").write_text("BAD = 13\n" + SCORE)
    return folder


def _rows(run: bai.Run) -> list[dict[str, str]]:
    with open(run.files_dir / "outputs" / "parallel_run_step.csv") as fh:
        return list(csv.DictReader(fh))


def test_items_on_two_nodes_each_row_once_failed_batch_then_retry(ws, score) -> None:
    ws.create_cluster("cpu", max_nodes=2)
    cfg = bai.ParallelRunConfig(source_directory=score, entry_script="score.py", items=list(range(40)),
                                mini_batch_size=5, node_count=2, process_count_per_node=2, retries=1,
                                error_threshold=10)
    run = ws.experiment("scoring").submit(cfg, cluster="cpu")
    details = run.wait_for_completion(timeout=120)
    assert details["status"] == "Completed"  # 5 failed items <= error_threshold 10
    rows = _rows(run)
    assert sorted(int(r["item"]) for r in rows) == [i for i in range(40) if not 10 <= i <= 14]
    assert all(int(r["square"]) == int(r["item"]) ** 2 for r in rows)
    assert details["parallel"]["total"] == 8 and details["parallel"]["done"] == 7
    assert details["parallel"]["failed"] == 1 and details["parallel"]["running"] == 0
    [failed] = run.failed_batches()
    assert failed["items"] == [10, 11, 12, 13, 14] and failed["attempts"] == 2
    assert "cannot score item 13" in failed["error"]
    workers = json.loads((run.files_dir / "logs" / "parallel_workers.json").read_text())
    assert len(workers) == 4  # where the time went: every worker of both nodes, once
    assert sum(w.get("batches", 0) for w in workers.values()) == 9  # 7 done, the failed one twice
    assert all(w["start"] <= w["imported"] <= w["init"] <= w["last_batch"] for w in workers.values())
    (score / "score.py").write_text("BAD = None\n" + SCORE)  # the fix; the retry snapshots it
    retry = run.retry_failed()
    assert retry.wait_for_completion(timeout=120)["status"] == "Completed"
    assert sorted(int(r["item"]) for r in _rows(retry)) == [10, 11, 12, 13, 14]
    assert retry.failed_batches() == [] and retry.tags["retry_of"] == run.id


def test_more_failed_items_than_error_threshold_fails_the_run(ws, score) -> None:
    (score / "score.py").write_text("BAD = 3\n" + SCORE.replace("if BAD in mini_batch", "if True"))
    cfg = bai.ParallelRunConfig(source_directory=score, entry_script="score.py", items=list(range(20)),
                                mini_batch_size=2, retries=0, error_threshold=3)
    run = ws.experiment("scoring").submit(cfg)
    with pytest.raises(bai.RunFailed) as err:
        run.wait_for_completion(timeout=120)
    assert "exited with code 1" in str(err.value)
    assert "more than error_threshold=3" in (run.files_dir / "stderr.txt").read_text()
    assert len(run.failed_batches()) >= 2 and (run.get_details()["parallel"] or {}).get("failed", 0) >= 2


def test_datastore_files_per_batch_jsonl(ws, tmp_path) -> None:
    data = tmp_path / "sensors"
    data.mkdir()
    for i in range(7):
        (data / f"device-{i}.txt").write_text(str(i * 10))
    ds = ws.get_default_datastore()
    ds.upload(str(data), target_path="sensors", show_progress=False)
    folder = tmp_path / "score"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent("""
        import atexit, os
        # a worker ends without the interpreter's teardown, but the script's exit handlers run
        atexit.register(lambda: open(f"outputs/ended-{os.getpid()}.txt", "w").write("bye"))
        def run(mini_batch):
            return [{"file": os.path.basename(p), "reading": int(open(p).read())} for p in mini_batch]
    """))
    cfg = bai.ParallelRunConfig(source_directory=folder, entry_script="score.py",
                                inputs=ds.path("sensors").as_download(), mini_batch_size=3,
                                output="per_batch", output_format="jsonl", process_count_per_node=2)
    run = ws.experiment("scoring").submit(cfg)
    assert run.wait_for_completion(timeout=120)["status"] == "Completed"
    names = [n for n in run.get_file_names() if n.startswith("outputs/batches/")]
    assert names == ["outputs/batches/batch-0.jsonl", "outputs/batches/batch-1.jsonl",
                     "outputs/batches/batch-2.jsonl"]
    rows = [json.loads(line) for n in names for line in (run.files_dir / n).read_text().splitlines()]
    assert sorted((r["file"], r["reading"]) for r in rows) == [(f"device-{i}.txt", i * 10) for i in range(7)]
    assert len([n for n in run.get_file_names() if n.startswith("outputs/ended-")]) == 2


def test_a_stalled_worker_loses_its_lease_and_the_batch_is_committed_once(ws, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BATCHAI_PARALLEL_LEASE_SECONDS", "2")
    folder = tmp_path / "score"
    folder.mkdir()
    marker = tmp_path / "stalled.pid"
    (folder / "score.py").write_text(textwrap.dedent(f"""
        import os, time
        def run(mini_batch):
            if os.environ["AZ_BATCHAI_TASK_INDEX"] != "0" and not os.path.exists({str(marker)!r}):
                open({str(marker)!r} + ".tmp", "w").write(str(os.getpid()))
                os.rename({str(marker)!r} + ".tmp", {str(marker)!r})
                time.sleep(10)  # stopped here by the test, long past its lease
            while not os.path.exists({str(marker)!r}):  # rank 0 waits for the other to stall
                time.sleep(0.05)
            return [{{"item": i}} for i in mini_batch]
    """))
    cfg = bai.ParallelRunConfig(source_directory=folder, entry_script="score.py", items=list(range(16)),
                                mini_batch_size=2, process_count_per_node=2)
    run = ws.experiment("scoring").submit(cfg)
    assert wait_until(marker.exists, 60)
    pid = int(marker.read_text())
    os.kill(pid, signal.SIGSTOP)  # no more lease renewals from it
    try:
        assert wait_until(lambda: (run.get_details().get("parallel") or {}).get("done") == 8, 60)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert run.wait_for_completion(timeout=120)["status"] == "Completed"
    assert sorted(int(r["item"]) for r in _rows(run)) == list(range(16))  # the stalled batch once, not twice


def test_bad_parallel_config_is_a_spec_error(ws, score) -> None:
    cases = [({"items": [1], "inputs": None, "mini_batch_size": 0}, "mini_batch_size"),
             ({"items": [1], "output": "rows"}, "output"),
             ({"items": [1], "output_format": "xml"}, "output_format"),
             ({}, "inputs"),
             ({"items": [1], "entry_script": "missing.py"}, "entry_script"),
             ({"items": "abc"}, "items"),
             ({"inputs": "sensors/"}, "inputs")]
    for options, field in cases:
        kwargs = {"source_directory": score, "entry_script": "score.py", **options}
        with pytest.raises(bai.SpecError) as err:
            ws.experiment("scoring").submit(bai.ParallelRunConfig(**kwargs))
        assert err.value.field == field, options
    assert ws.runs() == []


def test_an_init_that_raises_fails_the_run_with_its_traceback_before_any_batch(ws, tmp_path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent("""
        def init():
            raise FileNotFoundError("model.pkl is not in the model folder")
        def run(mini_batch):
            raise AssertionError("run() must not be called after init() failed")
    """))
    cfg = bai.ParallelRunConfig(source_directory=folder, entry_script="score.py", items=list(range(20)),
                                mini_batch_size=2, node_count=1, process_count_per_node=2, retries=3)
    run = ws.experiment("scoring").submit(cfg)
    details = run.wait_for_completion(timeout=120, raise_on_error=False)
    assert details["status"] == "Failed"
    shown = json.dumps(details["error"])
    assert "model.pkl is not in the model folder" in shown and "Traceback" in shown
    assert "run() must not be called" not in shown
    assert run.failed_batches() == []            # no batch was tried, so none failed or was retried
    assert not (details["parallel"] or {}).get("done")  # nothing was scored



_OPEN_QUEUE = """
import sys
from pathlib import Path
from batchai_jupyter.parallel.queue import BatchQueue
queue = BatchQueue(Path(sys.argv[1]))
print(queue.db.execute("PRAGMA journal_mode").fetchone()[0])
"""


def test_a_worker_opening_the_queue_while_another_writes_it_waits(tmp_path) -> None:
    """Every worker of every node opens parallel.db when the run starts; one that opens it while
    another still writes it in rollback mode was told "database is locked" at once (SQLite does not
    wait on a journal-mode switch) and died. It waits and gets the queue."""
    import sqlite3
    import subprocess
    import sys
    import time

    db = tmp_path / "parallel.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("CREATE TABLE early(x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO early VALUES(1)")
    opener = subprocess.Popen([sys.executable, "-c", _OPEN_QUEUE, str(db)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    time.sleep(1.5)
    assert opener.poll() is None, opener.communicate()  # still waiting, not dead
    writer.execute("COMMIT")
    writer.close()
    out, err = opener.communicate(timeout=60)
    assert opener.returncode == 0, err
    assert out.strip() == "wal"


def _descendants(pid: int) -> list[int]:
    """`pid` and every process under it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def test_a_parallel_run_that_loses_a_node_midway_reruns_its_batches_without_duplicate_rows(
        ws, tmp_path, monkeypatch) -> None:
    """Node 1's agent and workers are SIGKILLed while they hold leases (a node gone at once): the
    run is requeued onto live nodes, keeps the batches already committed, reruns the lost ones, and
    every item's row appears once."""
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "2")
    monkeypatch.setenv("BATCHAI_PARALLEL_LEASE_SECONDS", "2")
    ws.create_cluster("cpu", max_nodes=2)
    folder = tmp_path / "score"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent("""
        import os, time
        def run(mini_batch):
            time.sleep(0.3)
            return [{"item": i, "node": os.environ["AZ_BATCHAI_TASK_INDEX"]} for i in mini_batch]
    """))
    cfg = bai.ParallelRunConfig(source_directory=folder, entry_script="score.py", items=list(range(120)),
                                mini_batch_size=2, node_count=2, process_count_per_node=2)
    run = ws.experiment("scoring").submit(cfg, cluster="cpu")
    assert wait_until(lambda: (run.get_details().get("parallel") or {}).get("done", 0) >= 6, 90)
    nodes = run.get_details()["nodes"]
    assert len(nodes) == 2, nodes
    node_dir = Path(ws.paths.node_dir("cpu", nodes[1]))
    agent = int((node_dir / "runs" / run.id / "agent.started").read_text())
    doomed = _descendants(agent)
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert wait_until(lambda: all(_gone(pid) for pid in doomed), 10)
    details = run.wait_for_completion(timeout=180)
    assert details["status"] == "Completed", details.get("error")
    items = sorted(int(r["item"]) for r in _rows(run))
    assert items == list(range(120)), [i for i in set(items) if items.count(i) > 1]
    assert run.attempt == 1  # the lost node was noticed: the run went on in a second attempt
    assert details["parallel"]["done"] == 60 and details["parallel"]["failed"] == 0


def _gone(pid: int) -> bool:
    from tests.support import process_gone
    return process_gone(pid)

"""Runs on the local cluster end to end: logs, metrics, outputs, errors, cancel, children."""
from __future__ import annotations

import io
import json
import os
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import (
    ClusterNotFound,
    JobSpec,
    RunActive,
    RunFailed,
    SpecError,
    submission,
)
from tests.support import process_gone, wait_until


def _script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(body))
    return folder


def test_run_completes_with_logs_metrics_outputs(ws: bai.Workspace, src: Path, tmp_path: Path) -> None:
    run = ws.experiment("mnist").submit(JobSpec(source_directory=src, script="train.py", arguments=["4"]),
                                        tags={"lr": "0.1"})
    assert run.status in ("Queued", "Preparing", "Running")
    out = io.StringIO()
    details = run.wait_for_completion(show_output=True, out=out)
    text = out.getvalue()
    assert f"RunId: {run.id}" in text and "epoch 3 loss 0.250" in text
    assert "Execution Summary" in text and "Status: Completed" in text
    assert details["status"] == "Completed" and details["tags"] == {"lr": "0.1"}
    assert run.get_metrics()["loss"] == pytest.approx([1.0, 0.5, 1 / 3, 0.25])
    names = run.get_file_names()
    assert {"stdout.txt", "stderr.txt", "logs/train.log", "outputs/model.txt"} <= set(names)
    target = run.download_file("outputs/model.txt", tmp_path / "dl")
    assert target.read_text() == "weights"
    got = run.download_files(prefix="logs/", output_directory=tmp_path / "all")
    assert (tmp_path / "all" / "logs" / "train.log").read_text().count("log line") == 4
    assert len(got) == 1
    assert list(run.stream("stderr.txt")) == ["done"]


def test_job_environment(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _script(tmp_path / "env", "show.py", """
        import json, os
        keys = [k for k in os.environ if k.startswith(("AZ_BATCHAI", "BATCHAI_"))] + ["SEED", "TOKEN"]
        print(json.dumps({k: os.environ.get(k) for k in keys}))
    """)
    run = ws.experiment("env").submit(JobSpec(source_directory=src, script="show.py",
                                              environment_variables={"SEED": "7"}, secrets={"TOKEN": "tkn-123"}))
    run.wait_for_completion()
    env = json.loads(run.download_file("stdout.txt", tmp_path / "o.txt").read_text())
    assert env["BATCHAI_RUN_ID"] == run.id and env["BATCHAI_EXPERIMENT"] == "env"
    assert env["SEED"] == "7" and env["TOKEN"] == "tkn-123"
    for key in ("AZ_BATCHAI_JOB_TEMP", "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_STDOUTERR_DIR",
                "AZ_BATCHAI_JOB_MOUNT_ROOT", "AZ_BATCHAI_MOUNT_ROOT"):
        assert env[key] and os.path.isabs(env[key]), key
    assert env["AZ_BATCHAI_NUM_GPUS"] == "0" and env["AZ_BATCHAI_TASK_INDEX"] == "0"
    # the run's secret is gone from the workspace once the run ended, and never was in history.db
    assert b"tkn-123" not in (ws.path / "history.db").read_bytes()
    assert "tkn-123" not in (ws.path / "secrets.json").read_text()


def test_failed_run_has_exit_code_and_last_lines(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _script(tmp_path / "fail", "boom.py", """
        import sys
        print("about to fail")
        print("ValueError: bad learning rate", file=sys.stderr)
        sys.exit(3)
    """)
    run = ws.experiment("f").submit(JobSpec(source_directory=src, script="boom.py"))
    with pytest.raises(RunFailed) as err:
        run.wait_for_completion()
    assert err.value.run.id == run.id
    assert "bad learning rate" in "\n".join(err.value.last_lines)
    details = run.get_details()
    assert details["status"] == "Failed"
    assert details["error"]["exit_code"] == 3 and "code 3" in details["error"]["message"]
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"


def test_wall_clock_kills_the_job(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _script(tmp_path / "slow", "slow.py", "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    run = ws.experiment("w").submit(JobSpec(source_directory=src, script="slow.py", max_wall_clock_seconds=1))
    details = run.wait_for_completion(raise_on_error=False, timeout=60)
    assert details["status"] == "Failed"
    assert "max_wall_clock_seconds=1" in details["error"]["message"]


def test_job_preparation_runs_first_and_its_failure_fails_the_run(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _script(tmp_path / "prep", "main.py", "print(open('prepared.txt').read().strip())\n")
    ok = ws.experiment("p").submit(JobSpec(source_directory=src, script="main.py",
                                           job_preparation="echo ready > prepared.txt"))
    ok.wait_for_completion()
    assert list(ok.stream()) == ["ready"]
    bad = ws.experiment("p").submit(JobSpec(source_directory=src, script="main.py",
                                            job_preparation="echo missing-dep >&2; exit 4"))
    details = bad.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed" and "job preparation exited with code 4" in details["error"]["message"]
    assert "stderr-job_prep.txt" in bad.get_file_names()
    assert "stdout.txt" not in bad.get_file_names()


def test_non_utf8_output_streams(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _script(tmp_path / "bin", "bin.py", """
        import sys
        sys.stdout.buffer.write(b"caf\\xe9 latin1\\n\\xff\\xfe binary\\nlast line no newline")
    """)
    run = ws.experiment("b").submit(JobSpec(source_directory=src, script="bin.py"))
    lines = list(run.stream(follow=True))
    assert lines[0] == "caf\ufffd latin1" and lines[-1] == "last line no newline" and len(lines) == 3


def test_last_lines_are_never_lost(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _script(tmp_path / "burst", "burst.py", """
        import sys
        for i in range(20000):
            sys.stdout.write(f"line {i}\\n")
        sys.stdout.write("the end")
    """)
    run = ws.experiment("burst").submit(JobSpec(source_directory=src, script="burst.py"))
    lines = list(run.stream(follow=True))
    assert len(lines) == 20001 and lines[-2] == "line 19999" and lines[-1] == "the end"


def test_stream_shows_a_line_while_the_job_still_runs(ws: bai.Workspace, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    src = _script(tmp_path / "live", "live.py", f"""
        import os, time
        print("hello while running", flush=True)
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.02)
        print("after gate")
    """)
    run = ws.experiment("live").submit(JobSpec(source_directory=src, script="live.py"))
    stream = run.stream(follow=True)
    assert next(stream) == "hello while running"
    assert run.status == "Running"  # seen live, not collected at the end
    gate.write_text("go")
    assert list(stream) == ["after gate"]


def test_cancel_stops_the_job_and_its_processes(ws: bai.Workspace, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    src = _script(tmp_path / "c", "loop.py", f"""
        import os, subprocess, time
        child = subprocess.Popen(["sleep", "300"])
        open({str(pidfile)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        print("looping", flush=True)
        time.sleep(300)
    """)
    run = ws.experiment("c").submit(JobSpec(source_directory=src, script="loop.py"))
    assert next(run.stream()) == "looping"
    run.cancel()
    details = run.wait_for_completion(raise_on_error=False, timeout=60)
    assert details["status"] == "Canceled"
    for pid in map(int, pidfile.read_text().split()):
        assert wait_until(lambda pid=pid: process_gone(pid), 10), f"pid {pid} survived"


def test_cancel_a_queued_run(ws: bai.Workspace, tmp_path: Path) -> None:
    ws.cluster("local").update(max_nodes=1)
    gate = tmp_path / "gate"
    src = _script(tmp_path / "q", "wait.py", f"""
        import os, time
        print("holding", flush=True)
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.02)
    """)
    first = ws.experiment("q").submit(JobSpec(source_directory=src, script="wait.py"))
    second = ws.experiment("q").submit(JobSpec(source_directory=src, script="wait.py"))
    assert next(first.stream()) == "holding"
    assert second.status == "Queued"
    with pytest.raises(RunActive, match="Queued"):  # an active run is never deleted
        second.delete()
    second.cancel()
    assert wait_until(lambda: second.status == "Canceled", 10)
    gate.write_text("go")
    assert first.wait_for_completion()["status"] == "Completed"


def test_gang_of_two_nodes_and_queueing(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _script(tmp_path / "g", "who.py", """
        import os
        env = os.environ
        print(env["BATCHAI_NODE_INDEX"], env["AZ_BATCHAI_TASK_INDEX"], env["AZ_BATCHAI_NODE_COUNT"])
    """)
    run = ws.experiment("g").submit(JobSpec(source_directory=src, script="who.py", node_count=2,
                                            process_count_per_node=2))
    run.wait_for_completion()
    names = run.get_file_names()
    assert {"stdout-0-0.txt", "stdout-0-1.txt", "stdout-1-0.txt", "stdout-1-1.txt"} <= set(names)
    assert list(run.stream("stdout-1-1.txt")) == ["1 3 2"]
    assert len(run.get_details()["nodes"]) == 2
    assert ws.cluster("local").get_status().current_node_count == 2


def test_children_tags_and_recursive_metrics(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _script(tmp_path / "s", "sweep.py", """
        import sys
        from batchai_jupyter import Run
        Run.get_context().log("acc", float(sys.argv[1]))
    """)
    exp = ws.experiment("sweep")
    parent = exp.submit(JobSpec(source_directory=src, script="sweep.py", arguments=["0"]))
    children = [parent.submit_child(JobSpec(source_directory=src, script="sweep.py", arguments=[str(lr)]),
                                    tags={"lr": str(lr)}) for lr in (0.1, 0.2)]
    for r in [parent, *children]:
        r.wait_for_completion()
    assert [c.id for c in parent.get_children()] == [c.id for c in children]
    assert children[0].parent == parent and children[0].tags == {"lr": "0.1"}
    metrics = parent.get_metrics(recursive=True)
    assert metrics[children[1].id] == {"acc": 0.2} and metrics[parent.id] == {"acc": 0.0}
    parent.tag("best", children[1].id)
    assert ws.get_run(parent.id).tags["best"] == children[1].id
    assert [r.id for r in exp.get_runs()] == [parent.id]
    # queries: newest first, filtered by experiment, status, parent, tags; limited
    newest_first = [children[1].id, children[0].id, parent.id]
    assert [r.id for r in exp.get_runs(include_children=True)] == newest_first
    assert [r.id for r in ws.runs(experiment=exp)] == newest_first
    assert [r.id for r in ws.runs(parent=parent)] == newest_first[:2]
    assert [r.id for r in ws.runs(tags={"lr": "0.1"})] == [children[0].id]
    assert [r.id for r in ws.runs(tags="best")] == [parent.id]
    assert [r.id for r in ws.runs(status="Completed", limit=1)] == [children[1].id]
    assert ws.runs(status=("Queued", "Running")) == [] and ws.runs(experiment="other") == []
    # delete: rows, metrics and files of the run go; the others stay
    files = children[0].files_dir
    assert files.is_dir()
    children[0].delete()
    assert not files.exists() and ws.history.metric_rows([children[0].id]) == []
    with pytest.raises(bai.RunNotFound):
        ws.get_run(children[0].id)
    assert [c.id for c in parent.get_children()] == [children[1].id]
    assert parent.get_metrics(recursive=True)[children[1].id] == {"acc": 0.2}


def test_bad_input_is_rejected_before_anything_runs(ws: bai.Workspace, src: Path, tmp_path: Path) -> None:
    exp = ws.experiment("bad")
    with pytest.raises(ClusterNotFound) as err:
        exp.submit(JobSpec(source_directory=src, script="train.py"), cluster="gpu")
    assert "local" in str(err.value)
    with pytest.raises(SpecError) as err:
        exp.submit(JobSpec(source_directory=src, script="train.py", node_count=3))
    assert err.value.field == "node_count" and "1..2" in str(err.value)
    with pytest.raises(SpecError) as err:
        exp.submit(JobSpec(source_directory=tmp_path / "missing", command="true"))
    assert err.value.field == "source_directory"
    with pytest.raises(SpecError) as err:
        exp.submit(JobSpec(source_directory=src, script="nope.py"))
    assert err.value.field == "script"
    (src / "big.bin").write_bytes(b"x" * 5000)
    ws.set_snapshot_limits(max_bytes=4000)
    with pytest.raises(bai.SnapshotError, match="exceeds the limit"):
        exp.submit(JobSpec(source_directory=src, script="train.py"))
    with pytest.raises(SpecError) as err:  # the pipeline's steps work alone too
        submission.validate(ws, JobSpec(source_directory=src, script="train.py", node_count=5), "local")
    assert err.value.field == "node_count"
    with pytest.raises(SpecError) as err:
        submission.submit(ws, "no spaces", JobSpec(source_directory=src, script="train.py"))
    assert err.value.field == "experiment"
    assert ws.runs() == []


def test_runs_follow_from_another_process(ws: bai.Workspace, src: Path, tmp_path: Path) -> None:
    """Submit in one process; follow, download and cancel from others."""
    import subprocess
    import sys
    env = dict(os.environ, BATCHAI_WORKSPACE=str(ws.path))
    submit = textwrap.dedent(f"""
        import batchai_jupyter as bai
        ws = bai.Workspace.from_config()
        run = ws.experiment("x").submit(bai.JobSpec(source_directory={str(src)!r}, script="train.py"))
        print(run.id)
    """)
    run_id = subprocess.run([sys.executable, "-c", submit], env=env, capture_output=True, text=True,
                            check=True).stdout.strip()
    follow = textwrap.dedent(f"""
        import batchai_jupyter as bai
        run = bai.Workspace.from_config().get_run({run_id!r})
        for line in run.stream(): print(line)
        run.download_file("outputs/model.txt", {str(tmp_path / 'm.txt')!r})
        print(run.status)
    """)
    out = subprocess.run([sys.executable, "-c", follow], env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[:3] == ["epoch 0 loss 1.000", "epoch 1 loss 0.500", "epoch 2 loss 0.333"]
    assert out[-1] == "Completed" and (tmp_path / "m.txt").read_text() == "weights"

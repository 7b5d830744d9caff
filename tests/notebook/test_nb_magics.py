"""%%batchai_job, %batchai_job and %batchai_cluster through a real IPython shell.

Bad arguments of %%batchai_job are rows of the bad-input table in tests/test_bad_input.py."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from IPython.core.error import UsageError

import batchai_jupyter as bai

SCRIPT = textwrap.dedent("""
    import os, sys
    from batchai_jupyter import Run
    run = Run.get_context()
    print("args", sys.argv[1:], "seed", os.environ.get("SEED"), flush=True)
    run.log("acc", 0.5 + len(sys.argv) / 10)
""")

API_OPTIONS = ["--cluster", "--experiment", "--nodes", "--processes-per-node", "--distribution",
               "--source", "--script", "--command", "--input", "--output", "--env",
               "--gpus-per-process", "--tag", "--wait", "ARGS"]


def test_help_documents_every_option(ip) -> None:
    doc = ip.find_cell_magic("batchai_job").__doc__
    for option in API_OPTIONS:
        assert option in doc, option
    assert "pytorch" in doc and "mount|download" in doc
    text = ip.object_inspect_text("%%batchai_job")  # what `%%batchai_job?` shows
    assert "--processes-per-node" in text and "cell body is the job's entry script" in text


def test_cell_is_the_job_script(ip, ws: bai.Workspace, tmp_path: Path) -> None:
    source = tmp_path / "proj"
    source.mkdir()
    (source / "helper.txt").write_text("data")
    run = ip.run_cell_magic("batchai_job", f"--source {source} --experiment magic --env SEED=7 "
                            f"--tag lr=0.1 -- --epochs 2", SCRIPT)
    assert isinstance(run, bai.Run)  # returned at once: the cell does not wait for the job
    details = run.wait_for_completion(raise_on_error=True)
    assert details["status"] == "Completed"
    assert run.tags["lr"] == "0.1" and run.experiment.name == "magic"
    assert details["runDefinition"]["script"] == "main.py"
    stdout = (ws.run_files_dir(run.id) / "stdout.txt").read_text()
    assert "args ['--epochs', '2'] seed 7" in stdout
    assert run.get_metrics()["acc"] == pytest.approx(0.5 + 3 / 10)
    assert not (source / "main.py").exists()  # the body went into the snapshot, not the folder


def test_wait_streams_output_and_command_runs_with_empty_cell(ip, capsys) -> None:
    run = ip.run_cell_magic("batchai_job", "--wait --script job.py --command 'python job.py' -- x",
                            "import sys; print('from the cell', sys.argv[1:])\n")
    assert run.status == "Completed"
    out = capsys.readouterr().out
    assert f"RunId: {run.id}" in out and "from the cell ['x']" in out and "Execution Summary" in out
    # IPython refuses an empty cell body, so a command-only job is the line form
    run = ip.run_line_magic("batchai_job", "--wait --command \"echo only a command\"")
    assert run.status == "Completed"
    assert "only a command" in capsys.readouterr().out


def test_wait_raises_when_the_job_fails(ip) -> None:
    with pytest.raises(bai.RunFailed) as info:
        ip.run_cell_magic("batchai_job", "--wait", "import sys; print('bad input'); sys.exit(3)\n")
    assert info.value.run.status == "Failed"


def test_input_and_output_reach_the_job(ip, ws: bai.Workspace, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "numbers.txt").write_text("1 2 3\n")
    ws.get_default_datastore().upload(data, target_path="numbers", show_progress=False)
    run = ip.run_cell_magic(
        "batchai_job", "--input NUMS=workspacestore:numbers --output RESULT=workspacestore:results",
        textwrap.dedent("""
            import os
            total = sum(map(int, open(os.path.join(os.environ["AZ_BATCHAI_INPUT_NUMS"], "numbers.txt")).read().split()))
            open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_RESULT"], "sum.txt"), "w").write(str(total))
            print("sum", total)
        """))
    run.wait_for_completion(raise_on_error=True)
    assert "sum 6" in (ws.run_files_dir(run.id) / "stdout.txt").read_text()
    assert any(p.endswith("sum.txt") for p in ws.get_default_datastore().list("results"))


def test_job_line_magics(ip, ws: bai.Workspace, capsys) -> None:
    done = ip.run_cell_magic("batchai_job", "--experiment lines", "print('line one')\nprint('line two')\n")
    done.wait_for_completion()
    table = ip.run_line_magic("batchai_job", "list --experiment lines")
    assert [r["run id"] for r in table] == [done.id] and table[0]["status"] == "Completed"
    assert "<table" in table._repr_html_() and done.id in repr(table)
    assert ip.run_line_magic("batchai_job", f"show {done.id}") == done
    assert "stdout.txt" in [r["name"] for r in ip.run_line_magic("batchai_job", f"files {done.id}")]
    ip.run_line_magic("batchai_job", f"stream {done.id}")
    assert "line one\nline two" in capsys.readouterr().out
    long = ip.run_cell_magic("batchai_job", "", "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    ip.run_line_magic("batchai_job", f"cancel {long.id}")
    assert long.wait_for_completion(raise_on_error=False, timeout=60)["status"] == "Canceled"
    with pytest.raises(UsageError, match="recent runs"):
        ip.run_line_magic("batchai_job", "show nosuchrun")
    with pytest.raises(UsageError, match="invalid choice"):
        ip.run_line_magic("batchai_job", "lst")
    with pytest.raises(UsageError, match="needs an action"):
        ip.run_line_magic("batchai_job", "")


def test_cluster_magics(ip, ws: bai.Workspace) -> None:
    created = ip.run_line_magic("batchai_cluster", "create cpu3 --backend local --max-nodes 3 --idle-seconds 30")
    assert created.name == "cpu3" and created.max_nodes == 3 and created.idle_seconds_before_scaledown == 30
    assert [r["name"] for r in ip.run_line_magic("batchai_cluster", "list")] == ["local", "cpu3"]
    shown = {r["field"]: r["value"] for r in ip.run_line_magic("batchai_cluster", "show cpu3")}
    assert shown["backend"] == "local" and shown["max_nodes"] == 3
    assert ip.run_line_magic("batchai_cluster", "update cpu3 --max-nodes 4 --min-nodes 0").max_nodes == 4
    resized = ip.run_line_magic("batchai_cluster", "resize cpu3 0")
    assert (resized.min_nodes, resized.max_nodes) == (0, 0)
    ip.run_line_magic("batchai_cluster", "delete cpu3")
    assert "cpu3" not in [c.name for c in ws.clusters()]
    for line, expect in [("show nope", "known clusters: local"),
                         ("create x --backend kube", "invalid choice"),
                         ("create y --min-nodes 3 --max-nodes 1", "min_nodes"),
                         ("create local --max-nodes 2", "already exists"),
                         ("resize local -1", "0 or more"),
                         ("update local", "needs one of"),
                         ("remove local", "invalid choice"),
                         ("", "needs an action")]:
        with pytest.raises(UsageError) as info:
            ip.run_line_magic("batchai_cluster", line)
        assert expect in str(info.value), line


def test_large_snapshot_shows_a_progress_bar(ip, tmp_path: Path, capsys) -> None:
    from batchai_jupyter.notebook.progress import DEFAULT_MIN_BYTES
    source = tmp_path / "big"
    source.mkdir()
    (source / "weights.bin").write_bytes(b"\0" * (DEFAULT_MIN_BYTES + 1024))
    run = ip.run_cell_magic("batchai_job", f"--source {source}", "print('big snapshot')\n")
    err = capsys.readouterr().err  # tqdm.auto draws a text bar outside a notebook
    assert f"snapshot of {source}" in err and "100%" in err
    small = ip.run_cell_magic("batchai_job", "", "print('small')\n")
    assert "snapshot of" not in capsys.readouterr().err  # small snapshots: no bar
    assert run.wait_for_completion()["status"] == small.wait_for_completion()["status"] == "Completed"


def test_two_nodes_each_process_has_its_log(ip, ws: bai.Workspace) -> None:
    from batchai_jupyter.notebook.widget import RunDetails
    run = ip.run_cell_magic("batchai_job", "--nodes 2 --distribution pytorch",
                            "import os\nprint('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'])\n")
    widget = RunDetails(run, poll_seconds=0.05)
    assert widget.wait(120) and widget.status == "Completed"
    logs = list(widget.log_picker.options)
    assert logs[0] == run.main_log() and "rank 0 of 2" in widget.log_text
    others = [name for name in logs if name.startswith("stdout") and name != logs[0]]
    assert others, logs
    widget.log_picker.value = others[0]
    assert "rank 1 of 2" in widget.log_text


def test_tab_completion_of_options_and_values(ip, ws: bai.Workspace) -> None:
    ws.create_cluster("gpu-a", backend="local", max_nodes=1)
    ws.experiment("mnist").submit(bai.JobSpec(command="echo hi")).wait_for_completion()

    def matches(line: str) -> list[str]:
        first = line.split("\n", 1)[0]
        return ip.complete("", line, len(first))[1]

    assert "--cluster" in matches("%%batchai_job --clu")
    assert "gpu-a" in matches("%%batchai_job --cluster ")
    assert matches("%%batchai_job --cluster gpu") == ["gpu-a"]
    assert matches("%%batchai_job --experiment mn") == ["mnist"]
    assert matches("%%batchai_job --distribution p") == ["pytorch"]
    assert matches("%%batchai_job -e m\nprint(1)") == ["mnist"]  # the cell body does not matter
    assert matches("%batchai_job st") == ["stream"]
    run_id = ws.runs()[0].id
    assert matches(f"%batchai_job show {run_id[:6]}") == [run_id]
    assert set(matches("%batchai_cluster ")) >= {"list", "create", "delete"}


def test_tab_completion_of_the_schedule_magics(ip, ws: bai.Workspace) -> None:
    ws.create_schedule("hourly-scoring", bai.JobSpec(command="echo hi"), cron="5 * * * *")

    def matches(line: str) -> list[str]:
        first = line.split("\n", 1)[0]
        return ip.complete("", line, len(first))[1]

    assert set(matches("%batchai_schedule ")) >= {"list", "pause", "resume", "trigger", "fires", "delete"}
    assert matches("%batchai_schedule pa") == ["pause"]
    assert matches("%batchai_schedule pause hour") == ["hourly-scoring"]
    assert "--cron" in matches("%%batchai_schedule nightly --cr")
    assert "--cluster" in matches("%%batchai_schedule nightly --clu")   # the job's options too
    assert matches("%%batchai_schedule nightly --tz Europe/Ber") == ["Europe/Berlin"]
    assert matches("%%batchai_schedule nightly --overlap c") == ["cancel_previous"]
    assert set(matches("%%batchai_schedule nightly --catchup ")) == {"latest", "none", "all"}
    assert matches("%%batchai_schedule nightly --cron '5 * * * *' --cluster loc\nprint(1)") == ["local"]


def test_help_has_examples(ip) -> None:
    doc = ip.find_cell_magic("batchai_job").__doc__
    assert "Examples" in doc and "-- --epochs 3" in doc and "--distribution pytorch" in doc

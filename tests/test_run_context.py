"""Run.get_context() inside a job: every kind of metric, images, and the offline stand-in."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec


def test_metric_kinds_and_images(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "m"
    src.mkdir()
    (src / "log.py").write_text(textwrap.dedent("""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from batchai_jupyter import Run
        run = Run.get_context()
        run.log("lr", 0.1)
        for step, loss in enumerate([0.9, 0.5, 0.2]):
            run.log("loss", loss, step=step)
        run.log_list("acc_per_class", [0.8, 0.9])
        run.log_row("epochs", epoch=1, acc=0.7)
        run.log_row("epochs", epoch=2, acc=0.8)
        plt.plot([0.9, 0.5, 0.2])
        run.log_image("curve", plot=plt)
    """))
    run = ws.experiment("m").submit(JobSpec(source_directory=src, script="log.py"))
    run.wait_for_completion()
    metrics = run.get_metrics()
    assert metrics["lr"] == 0.1 and metrics["loss"] == [0.9, 0.5, 0.2]
    assert metrics["acc_per_class"] == [0.8, 0.9]
    assert metrics["epochs"] == {"epoch": [1, 2], "acc": [0.7, 0.8]}
    image = metrics["curve"]
    assert image.startswith("images/curve-") and image in run.get_file_names()
    assert (ws.run_files_dir(run.id) / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run.get_metrics(name="lr") == {"lr": 0.1}


def test_offline_context_prints() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHAI_")}
    code = ("from batchai_jupyter import Run\n"
            "r = Run.get_context(); r.log('loss', 0.5, step=2); print(r.id)")
    out = subprocess.run([sys.executable, "-c", code],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert "[metric] loss = 0.5 (step 2)" in out and "OfflineRun" in out


def test_cancel_from_another_process(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "s"
    src.mkdir()
    (src / "sleep.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    run = ws.experiment("x").submit(JobSpec(source_directory=src, script="sleep.py"))
    assert next(run.stream()) == "up"
    code = f"import batchai_jupyter as bai\nbai.Workspace({str(ws.path)!r}).get_run({run.id!r}).cancel()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert run.wait_for_completion(raise_on_error=False, timeout=60)["status"] == "Canceled"


def test_aml_signatures_and_child_files(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "sig"
    src.mkdir()
    (src / "sig.py").write_text(textwrap.dedent("""
        import io
        from batchai_jupyter import Run
        run = Run.get_context()
        run.log("plain", 1.0, "a description, not a step")
        run.log("stepped", 2.0, step=5)
        run.log_list("values", value=[1, 2])
        run.log_row("table", "rows of a table", epoch=1)
        with open("pic.png", "wb") as fh:
            fh.write(b"\\x89PNG\\r\\n\\x1a\\n fake")
        child = run.child_run(name="shard")
        child.log_image("shard-image", path="pic.png")
        child.upload_file("outputs/part.txt", io.BytesIO(b"part"))
        child.complete()
    """))
    run = ws.experiment("sig").submit(JobSpec(source_directory=src, script="sig.py"))
    run.wait_for_completion()
    assert run.get_metrics() == {"plain": 1.0, "stepped": 2.0, "values": [1, 2], "table": {"epoch": [1]}}
    rows = ws.history.metric_rows([run.id])
    assert [r["step"] for r in rows[:2]] == [None, 5]
    (child,) = run.get_children()
    image = child.get_metrics()["shard-image"]
    assert child.status == "Completed" and image in child.get_file_names()
    assert (child.files_dir / "outputs" / "part.txt").read_bytes() == b"part"
    assert not any(n.startswith(("images/", "outputs/part")) for n in run.get_file_names())


def test_reads_where_the_workspace_is_not_seen(tmp_path: Path) -> None:
    """A node that cannot see the workspace: the run answers from what it recorded itself."""
    folder = tmp_path / "node" / "runs" / "r1"
    (folder / "artifacts").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHAI_")}
    env.update(BATCHAI_RUN_ID="r1", BATCHAI_EXPERIMENT="e", BATCHAI_METRICS_FILE=str(folder / "metrics.jsonl"),
               BATCHAI_ARTIFACTS_DIR=str(folder / "artifacts"))
    code = textwrap.dedent("""
        import json
        from batchai_jupyter import Run
        run = Run.get_context()
        run.log("loss", 0.5); run.log("loss", 0.25); run.tag("k", "v"); run.add_properties({"p": 1})
        kid = run.child_run()
        print(json.dumps({"metrics": run.get_metrics(), "tags": run.get_tags(), "props": run.get_properties(),
                          "status": run.get_status(), "kids": [c.id for c in run.get_children()],
                          "kid": kid.id, "model": run.experiment.workspace_path}))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["metrics"] == {"loss": [0.5, 0.25]} and got["tags"] == {"k": "v"}
    assert got["props"] == {"p": "1"} and got["status"] == "Running" and got["kids"] == [got["kid"]]
    assert got["model"] is None
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("op") for r in records] == [None, None, "tags", "properties", "child"]


def test_bad_input_is_a_typed_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHAI_")}
    code = textwrap.dedent("""
        from batchai_jupyter import Run, SpecError
        run = Run.get_context()
        for call in (lambda: run.log("", 1), lambda: run.log("x", 1, step="3"), lambda: run.log_list("x", 3),
                     lambda: run.log_image("i"), lambda: run.log_confusion_matrix("c", "not json"),
                     lambda: run.log_residuals("r", {"schema_type": "predictions", "data": {}}),
                     lambda: run.upload_file("../x", "y"), lambda: run.create_children(),
                     lambda: run.register_model("bad name", "outputs/m")):
            try:
                call()
            except SpecError as exc:
                print("typed:", exc.field)
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.count("typed:") == 9, out


def test_start_logging_is_an_interactive_run(ws: bai.Workspace, tmp_path: Path) -> None:
    exp = ws.experiment("notebook")
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "analysis.py").write_text("print(1)\n")
    run = exp.start_logging(snapshot_directory=str(tmp_path / "nb"))
    assert run.status == "Running" and run in exp.get_runs()
    run.log("acc", 0.5)
    run.log("acc", 0.75, step=1)
    run.log_row("table", a=1)
    run.log_confusion_matrix("cm", {"class_labels": ["x"], "matrix": [[1]]})
    (tmp_path / "f.txt").write_text("kept")
    run.upload_file("outputs/f.txt", str(tmp_path / "f.txt"))
    run.tag("who", "me")
    run.add_properties({"origin": "notebook"})
    with run.child_run(name="part") as part:
        part.log("x", 1)
    assert run.get_metrics() == {"acc": [0.5, 0.75], "table": {"a": [1]},
                                 "cm": {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
                                        "data": {"class_labels": ["x"], "matrix": [[1]]}}}
    assert run.get_file_names() == ["outputs/f.txt"]
    model = run.register_model("nb-model", "outputs/f.txt")
    assert model.version == 1 and model.run_id == run.id
    run.complete()
    assert run.get_status() == "Completed" and run.get_details()["status"] == "Completed"
    assert run.get_tags() == {"who": "me"} and run.get_properties() == {"origin": "notebook"}
    assert [c.status for c in run.get_children()] == ["Completed"]
    assert run.get_details()["endTimeUtc"] is not None
    assert run.row()["properties"]["snapshot_files"] == 1

    other = exp.start_logging()
    ws.get_run(other.id).cancel()  # from any process: no engine is needed for it
    assert other.status == "Canceled"

    failed = exp.start_logging()
    failed.fail(error_details=ValueError("diverged"))
    assert failed.get_details()["error"]["message"] == "ValueError: diverged"
    with pytest.raises(bai.RunFailed, match="diverged"):
        failed.wait_for_completion()

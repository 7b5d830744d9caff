"""Azure ML v1 scripts inside jobs: `from azureml.core import Run` unchanged, every Run method's
effect seen from the client, and the shim left out where a real azureml is importable."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.compat import SHIM_DIR, with_shim
from tests.compute.ssh_env import SSHHosts, make_ssh_cluster, running_hosts

AML = Path(__file__).parent / "aml"
SCRIPT = AML / "train_ridge.py"


def _reads(run: bai.Run) -> dict[str, object]:
    lines = [line for line in run.stream() if line.startswith("READS ")]
    assert lines, run.get_details()
    result: dict[str, object] = json.loads(lines[-1][len("READS "):])
    return result


def test_aml_training_script_runs_unchanged(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "aml"
    src.mkdir()
    shutil.copy(SCRIPT, src / "train.py")
    run = ws.experiment("aml").submit(JobSpec(source_directory=src, script="train.py",
                                              arguments=["--regularization", "0.5"]))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", (details, (ws.run_files_dir(run.id) / "stderr.txt").read_text())
    assert "same class: True" in list(run.stream())

    metrics = run.get_metrics()
    assert metrics["Regularization Rate"] == 0.5
    assert metrics["alpha"] == [0.0, 0.5, 1.0] and len(metrics["mse"]) == 3
    assert metrics["results"]["alpha"] == [0.0, 0.5, 1.0]
    assert metrics["alphas"] == [0.0, 0.5, 1.0] and metrics["points"] == {"x": [1.0, 2.0, 3.0, 4.0],
                                                                          "y": [2.0, 4.0, 6.0, 8.0]}
    assert metrics["confusion"] == {"schema_type": "confusion_matrix", "schema_version": "1.0.0",
                                    "data": {"class_labels": ["neg", "pos"], "matrix": [[5, 1], [0, 6]]}}
    assert metrics["accuracy"]["schema_type"] == "accuracy_table"
    assert metrics["accuracy"]["data"]["class_labels"] == ["neg", "pos"]
    assert metrics["predictions"]["data"]["bin_counts"] == [4]
    assert metrics["residuals"] == {"schema_type": "residuals", "schema_version": "1.0.0",
                                    "data": {"bin_edges": [-1.0, 0.0, 1.0], "bin_counts": [2, 2]}}

    assert run.get_tags() == {"model": "ridge", "data": "line", "reg": "0.5"}
    assert run.get_properties() == {"framework": "stdlib"}
    names = run.get_file_names()
    assert {"outputs/model.json", "outputs/notes.txt", "extra/sub/a.txt"} <= set(names)

    # children made inside the job: tagged, logged into, each ending as the script said
    children = {c.row()["properties"].get("display_name") or c.tags.get("fold"): c for c in run.get_children()}
    assert set(children) == {"0", "1", "evaluation", "broken"}
    assert children["0"].status == "Completed" and children["1"].status == "Completed"  # ended with the job
    assert children["0"].get_metrics() == {"fold_mse": 0.1}
    assert children["evaluation"].get_metrics() == {"accuracy": 0.9}
    assert children["evaluation"].status == "Completed"
    assert children["broken"].status == "Failed"
    assert children["broken"].get_details()["error"]["message"] == "fold data missing"
    assert run.get_metrics(recursive=True)[children["1"].id] == {"fold_mse": pytest.approx(0.2)}
    assert all(c.parent == run for c in children.values())
    assert run in ws.experiment("aml").get_runs() and len(ws.experiment("aml").get_runs()) == 1

    # the script's own reads, answered from the workspace (the local cluster sees it)
    reads = _reads(run)
    assert reads["tags"] == {"model": "ridge", "data": "line", "reg": "0.5"}
    assert reads["properties"] == {"framework": "stdlib"} and reads["status"] == "Running"
    assert "confusion" in reads["metrics"] and len(reads["mse"]["mse"]) == 3  # type: ignore[index]
    assert reads["parent"] is True and reads["experiment"] == "aml" and reads["id"] == run.id
    assert reads["model_version"] == 1 and reads["children"] == 4 and reads["details_status"] == "Running"
    assert set(reads["files"]) == {"outputs/notes.txt", "extra/sub/a.txt"}  # type: ignore[arg-type]

    model = bai.Model(ws, "ridge")
    assert (model.version, model.run_id, model.tags) == (1, run.id, {"alpha": "0.5"})
    got = Path(model.download(tmp_path / "dl"))
    assert json.loads(got.read_text())["slope"] > 0


def test_sklearn_sample_shape_with_numpy_values_and_a_pyplot_image(ws: bai.Workspace, tmp_path: Path) -> None:
    """The SDK's scikit-learn samples log numpy values as they come: they are numbers and lists
    in the run history, as in Azure ML (not their str()), and log_image(plot=plt) keeps a PNG."""
    for module in ("sklearn", "matplotlib", "joblib", "numpy"):
        pytest.importorskip(module, reason=f"{module} is not installed (the sample needs it)")
    src = tmp_path / "svm"
    src.mkdir()
    shutil.copy(AML / "train_svm.py", src / "train_svm.py")
    run = ws.experiment("svm").submit(JobSpec(source_directory=src, script="train_svm.py",
                                              arguments=["--kernel", "linear", "--penalty", "0.5"]))
    details = run.wait_for_completion(raise_on_error=False, timeout=180)
    assert details["status"] == "Completed", details.get("error")
    metrics = run.get_metrics()
    assert metrics["Kernel type"] == "linear" and metrics["Penalty"] == 0.5
    assert isinstance(metrics["Accuracy"], float) and 0.9 < metrics["Accuracy"] <= 1.0
    assert metrics["Test samples"] == 38 and isinstance(metrics["Test samples"], int)
    assert metrics["Correct per class"] == [13, 15, 9]
    assert metrics["Classes"] == {"class": [0, 1, 2], "correct": [13, 15, 9], "total": [13, 16, 9]}
    assert metrics["Summary"]["support"] == [38]
    assert metrics["Confusion"]["data"]["class_labels"] == ["setosa", "versicolor", "virginica"]
    assert metrics["Confusion"]["data"]["matrix"][0] == [13, 0, 0]
    image = metrics["Correct per class plot"]
    assert image.startswith("images/") and image in run.get_file_names()
    assert (ws.run_files_dir(run.id) / image).read_bytes().startswith(b"\x89PNG")
    assert {"outputs/model.joblib", "outputs/report.txt"} <= set(run.get_file_names())
    assert any(line.startswith("Accuracy of SVM classifier on test set: 0.9") for line in run.stream())


def test_pipeline_step_shape_finds_its_workspace_parent_and_cancels_the_pipeline(
        ws: bai.Workspace, tmp_path: Path) -> None:
    """A step of a pipeline (a child job of a parent run): run.experiment.workspace,
    Model.register of a folder, Model(ws, name), run.parent's reads; run.parent.cancel() ends the
    pipeline; any other write to the parent is refused, naming what a job may do."""
    src = tmp_path / "step"
    src.mkdir()
    shutil.copy(AML / "register_step.py", src / "register_step.py")
    pipeline = ws.experiment("pipe").submit(JobSpec(wait_for_children=True))
    step = pipeline.submit_child(JobSpec(source_directory=src, script="register_step.py",
                                         arguments=["--model_name", "pipe-model"]))
    assert step.wait_for_completion(raise_on_error=False, timeout=120)["status"] == "Completed"
    reads = _reads(step)
    assert reads["offline"] is False and reads["parent"] == pipeline.id
    assert reads["parent_status"] == "Running" and reads["siblings"] == [step.id]
    assert (reads["version"], reads["created"], reads["tags"]) == (1, True, {"step": "register"})
    assert "setting tags of run " + pipeline.id in str(reads["refused"]) and "cancel()" in str(reads["refused"])
    assert pipeline.get_tags() == {}
    model = bai.Model(ws, "pipe-model")
    assert Path(model.download(tmp_path / "dl"), "weights.txt").read_text() == "w=1\n"

    stop = pipeline.submit_child(JobSpec(source_directory=src, script="register_step.py", arguments=["--stop"]))
    details = pipeline.wait_for_completion(raise_on_error=False, timeout=120)
    assert details["status"] == "Canceled"
    assert stop.wait_for_completion(raise_on_error=False, timeout=60)["status"] in ("Completed", "Canceled")
    assert "no new data: cancelling the pipeline" in list(stop.stream())


def test_offline_run_is_azure_mls_offline_class() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHAI_")}
    env["PYTHONPATH"] = SHIM_DIR
    code = ("from azureml.core.run import Run, _OfflineRun\n"
            "run = Run.get_context()\n"
            "print(type(run) == _OfflineRun, isinstance(run, Run), run.parent)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "None"]


def test_job_fail_and_cancel_requests(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.mkdir()
    (src / "fail.py").write_text(textwrap.dedent("""
        from azureml.core import Run
        run = Run.get_context()
        run.log("seen", 1)
        run.fail(error_details="validation loss diverged")
        print("exiting with code 0")
    """))
    run = ws.experiment("req").submit(JobSpec(source_directory=src, script="fail.py"))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed"
    assert details["error"]["message"] == "validation loss diverged"
    assert run.get_metrics() == {"seen": 1}

    (src / "cancel.py").write_text("import time\nfrom azureml.core import Run\nRun.get_context().cancel()\n"
                                   "time.sleep(60)\n")
    run = ws.experiment("req").submit(JobSpec(source_directory=src, script="cancel.py"))
    assert run.wait_for_completion(raise_on_error=False, timeout=60)["status"] == "Canceled"


def test_shim_is_left_out_where_a_real_azureml_is_importable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    assert with_shim(env, sys.executable)["PYTHONPATH"].split(os.pathsep)[0] == SHIM_DIR
    real = tmp_path / "site" / "azureml" / "core"
    real.mkdir(parents=True)
    (real.parent / "__init__.py").write_text("")
    (real / "__init__.py").write_text("REAL = True\n")
    env["PYTHONPATH"] = str(tmp_path / "site")
    shimmed = with_shim(env, sys.executable)
    assert shimmed["PYTHONPATH"] == str(tmp_path / "site")  # a real one: the job's path as it was
    out = subprocess.run([sys.executable, "-c", "import azureml.core as c; print(c.REAL)"], env=shimmed,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"


def test_shim_offers_what_training_scripts_import() -> None:
    env = dict(os.environ, PYTHONPATH=SHIM_DIR)
    env = {k: v for k, v in env.items() if not k.startswith("BATCHAI_")}
    code = ("from azureml.core import Run, Experiment, Workspace, Model\n"
            "from azureml.core.run import Run as R2\n"
            "import batchai_jupyter as bai\n"
            "assert Run is R2 and Workspace is bai.Workspace and Model is bai.Model\n"
            "r = Run.get_context(); r.log('x', 1.5, 'a description'); print(r.id)\n"
            "try:\n    from azureml.core import Dataset\nexcept ImportError as e:\n    print('no Dataset')\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "[metric] x = 1.5" in out and "(step" not in out and "OfflineRun" in out and "no Dataset" in out


@pytest.fixture(scope="module")
def one_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHHosts]:
    yield from running_hosts(tmp_path_factory.mktemp("amlhost"), count=1)


@pytest.mark.timeout(240)
def test_writes_on_a_node_that_cannot_see_the_workspace(ws: bai.Workspace, one_host: SSHHosts,
                                                         tmp_path: Path) -> None:
    """An ssh host whose node root is outside the workspace: the job's writes reach the run
    history through the engine, its reads answer from what it recorded itself."""
    cluster = make_ssh_cluster(ws, one_host, count=1, node_root=str(tmp_path / "remote" / "{host}"))
    src = tmp_path / "s"
    src.mkdir()
    (src / "job.py").write_text(textwrap.dedent("""
        import json, os
        from azureml.core import Run
        run = Run.get_context()
        run.log("loss", 0.5)
        run.tag("where", "ssh")
        kid = run.child_run(name="part")
        kid.log("part_loss", 0.25)
        os.makedirs("outputs", exist_ok=True)
        with open("outputs/m.txt", "w") as fh:
            fh.write("remote model")
        model = run.register_model("remote", "outputs/m.txt")
        print("READS " + json.dumps({"tags": run.get_tags(), "metrics": run.get_metrics(),
                                     "status": run.get_status(), "model_version": model.version,
                                     "children": [c.id for c in run.get_children()], "kid": kid.id}))
    """))
    run = ws.experiment("remote").submit(JobSpec(source_directory=src, script="job.py"), cluster=cluster)
    details = run.wait_for_completion(raise_on_error=False, timeout=180)
    assert details["status"] == "Completed", details
    reads = _reads(run)
    assert reads["tags"] == {"where": "ssh"} and reads["metrics"] == {"loss": 0.5}
    assert reads["status"] == "Running" and reads["model_version"] is None
    assert reads["children"] == [reads["kid"]]
    assert run.get_tags() == {"where": "ssh"} and run.get_metrics() == {"loss": 0.5}
    (kid,) = run.get_children()
    assert kid.id == reads["kid"] and kid.status == "Completed" and kid.get_metrics() == {"part_loss": 0.25}
    model = bai.Model(ws, "remote")
    assert model.version == 1 and Path(model.download(tmp_path / "dl")).read_text() == "remote model"

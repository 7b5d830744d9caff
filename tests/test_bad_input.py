"""Bad input gets a typed SpecError naming the field, before anything is stored or runs."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.errors import SpecError
from batchai_jupyter.submission import check_experiment_name, submit


def _ids(cases: list[tuple[dict[str, Any], str]]) -> list[str]:
    return [f"{field}-{i}" for i, (_kwargs, field) in enumerate(cases)]


SPEC_CASES: list[tuple[dict[str, Any], str]] = [
    ({"command": 123}, "command"),
    ({"command": "echo a\0b"}, "command"),
    ({"command": None, "script": 5}, "script"),
    ({"command": None, "script": "train.py", "arguments": [1, None]}, "arguments"),
    ({"arguments": "--epochs 2"}, "arguments"),
    ({"arguments": ["ok", b"bytes"]}, "arguments"),
    ({"arguments": ["a\0b"]}, "arguments"),
    ({"arguments": [True]}, "arguments"),
    ({"environment_variables": {"SEED": None}}, "environment_variables"),
    ({"environment_variables": {"SEED": "1\x002"}}, "environment_variables"),
    ({"environment_variables": ["SEED=1"]}, "environment_variables"),
    ({"environment_variables": {"SEED": ["1"]}}, "environment_variables"),
    ({"secrets": {"API_KEY": None}}, "secrets"),
    ({"secrets": {"API_KEY": "a\0b"}}, "secrets"),
    ({"secrets": "API_KEY=x"}, "secrets"),
    ({"source_directory": None}, "source_directory"),
    ({"source_directory": 42}, "source_directory"),
    ({"source_directory": "a\0b"}, "source_directory"),
    ({"job_preparation": ["pip install x"]}, "job_preparation"),
    ({"job_preparation": "pip\0"}, "job_preparation"),
    ({"node_count": 10_001}, "node_count"),
    ({"node_count": 10**12}, "node_count"),
    ({"process_count_per_node": 1025}, "process_count_per_node"),
    ({"process_count_per_node": "2"}, "process_count_per_node"),
    ({"distribution": "tensorflow", "worker_count": 10**6, "node_count": 10_000,
      "process_count_per_node": 1024}, "worker_count"),
    ({"distribution": "tensorflow", "worker_count": 1, "parameter_server_count": 10**6, "node_count": 10_000,
      "process_count_per_node": 1024}, "parameter_server_count"),
    ({"inputs": ["DATASET"]}, "inputs"),
    ({"outputs": "MODEL"}, "outputs"),
    ({"mounts": None}, "mounts"),
    ({"master_only": "yes"}, "master_only"),
    ({"python_interpreter": 3}, "python_interpreter"),
    ({"inputs": {"D": "workspacestore:a\0b"}}, "inputs.D.path"),
    ({"inputs": {"D": {"datastore": "workspacestore", "path": "a\nb"}}}, "inputs.D.path"),
    ({"inputs": {"D": {"datastore": "workspacestore", "path": "a", "path_on_compute": "c\0"}}},
     "inputs.D.path_on_compute"),
    ({"outputs": {"M": "workspacestore:models\0"}}, "outputs.M.path"),
    ({"outputs": {"M": {"datastore": "workspacestore", "path": "m", "path_suffix": "s\x1b"}}},
     "outputs.M.path_suffix"),
    ({"mounts": {"data": {"datastore": "workspacestore", "path": "a\0"}}}, "mounts.data.path"),
]


def _spec(tmp_path: Path, **kwargs: Any) -> JobSpec:
    (tmp_path / "train.py").write_text("print('hi')\n")
    base: dict[str, Any] = {"source_directory": str(tmp_path), "command": "true"}
    base.update(kwargs)
    return JobSpec(**base)


@pytest.mark.parametrize(("kwargs", "field"), SPEC_CASES, ids=_ids(SPEC_CASES))
def test_jobspec_validate_names_the_bad_field(tmp_path: Path, kwargs: dict[str, Any], field: str) -> None:
    spec = _spec(tmp_path, **kwargs)
    with pytest.raises(SpecError) as err:
        spec.validate()
    assert err.value.field == field
    if field == "secrets":  # a bad secret's value is never shown
        assert "API_KEY=x" not in str(err.value) and "a\0b" not in str(err.value)


CLUSTER_CASES: list[tuple[dict[str, Any], str]] = [
    ({"max_nodes": 10_001}, "max_nodes"),
    ({"max_nodes": 10**9}, "max_nodes"),
    ({"max_nodes": "4"}, "max_nodes"),
    ({"max_nodes": 4, "min_nodes": -1}, "min_nodes"),
    ({"max_nodes": 4, "min_nodes": 5}, "min_nodes"),
    ({"max_nodes": 4, "gpus_per_node": 1.5}, "gpus_per_node"),
    ({"max_nodes": 4, "idle_seconds_before_scaledown": None}, "idle_seconds_before_scaledown"),
]


@pytest.mark.parametrize(("kwargs", "field"), CLUSTER_CASES, ids=_ids(CLUSTER_CASES))
def test_create_cluster_names_the_bad_field(ws: bai.Workspace, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        ws.create_cluster("bad", backend="local", **kwargs)
    assert err.value.field == field
    assert [c.name for c in ws.clusters()] == ["local"]  # nothing stored


def test_cluster_update_is_bounded_too(ws: bai.Workspace) -> None:
    with pytest.raises(SpecError) as err:
        ws.cluster("local").update(max_nodes=10_001)
    assert err.value.field == "max_nodes" and ws.cluster("local").max_nodes == 2


SUBMIT_CASES: list[tuple[dict[str, Any], str]] = [
    ({"experiment": "x" * 201}, "experiment"),
    ({"experiment": "."}, "experiment"),
    ({"experiment": ".."}, "experiment"),
    ({"experiment": "a/b"}, "experiment"),
    ({"experiment": 7}, "experiment"),
    ({"tags": ["lr"]}, "tags"),
    ({"tags": {"lr": 0.1}}, "tags"),
    ({"tags": {"lr": None}}, "tags"),
    ({"tags": {1: "a"}}, "tags"),
    ({"spec": {"node_count": 3}}, "node_count"),           # more than max_nodes=2 of `local`
    ({"spec": {"arguments": [1, None]}}, "arguments"),
    ({"spec": {"command": 123}}, "command"),
    ({"spec": {"source_directory": None}}, "source_directory"),
    ({"spec": {"environment_variables": {"A": None}}}, "environment_variables"),
    ({"spec": {"inputs": {"D": "workspacestore:a\0b"}}}, "inputs.D.path"),
    ({"spec": {"outputs": {"M": {"datastore": "workspacestore", "path": "m\0"}}}}, "outputs.M.path"),
]


@pytest.mark.parametrize(("kwargs", "field"), SUBMIT_CASES, ids=_ids(SUBMIT_CASES))
def test_submit_names_the_bad_field_and_stores_nothing(ws: bai.Workspace, tmp_path: Path,
                                                       kwargs: dict[str, Any], field: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    spec = _spec(src, **kwargs.get("spec", {}))
    with pytest.raises(SpecError) as err:
        submit(ws, kwargs.get("experiment", "e"), spec, tags=kwargs.get("tags"))
    assert err.value.field == field
    assert ws.history.run_rows() == []
    assert not ws.secrets.values()


def test_numbers_as_arguments_and_env_values_are_accepted_as_strings(tmp_path: Path) -> None:
    spec = _spec(tmp_path, command=None, script="train.py", arguments=[1, 2.5, "x"],
                 environment_variables={"SEED": 1}).validate()
    assert spec.to_dict()["arguments"] == ["1", "2.5", "x"]
    assert check_experiment_name("a" * 200) == "a" * 200


# -- job.json: keys and types inside its objects ------------------------------------------------------
_PT = {"pythonScriptFilePath": "train.py"}
JOB_JSON_CASES: list[tuple[dict[str, Any], str]] = [
    ({"pyTorchSettings": {**_PT, "commandLineArguments": "--epochs 2"}}, "pyTorchSettings.commandLineArguments"),
    ({"pyTorchSettings": {**_PT, "processCount": "2"}}, "pyTorchSettings.processCount"),
    ({"pyTorchSettings": "train.py"}, "pyTorchSettings"),
    ({"pyTorchSettings": _PT, "constraints": [{"maxWallClockTime": "PT1H"}]}, "constraints"),
    ({"pyTorchSettings": _PT, "constraints": {"maxWallclockTime": "PT1H"}}, "constraints.maxWallclockTime"),
    ({"pyTorchSettings": _PT, "jobPreparation": {"commandline": "pip install x"}}, "jobPreparation.commandline"),
    ({"pyTorchSettings": _PT, "jobPreparation": "pip install x"}, "jobPreparation"),
    ({"pyTorchSettings": _PT, "environmentVariables": {"SEED": "1"}}, "environmentVariables"),
    ({"pyTorchSettings": _PT, "environmentVariables": [{"name": "SEED", "valeu": "1"}]},
     "environmentVariables[0].valeu"),
    ({"pyTorchSettings": _PT, "inputDirectories": [{"id": "D", "path": 3}]}, "inputDirectories[0].path"),
    ({"pyTorchSettings": _PT, "outputDirectories": [{"id": "M", "pathPrefx": "x"}]},
     "outputDirectories[0].pathPrefx"),
    ({"pyTorchSettings": _PT, "mountVolumes": {"azureFileShares": {"accountName": "a"}}},
     "mountVolumes.azureFileShares"),
    ({"pyTorchSettings": _PT, "mountVolumes": {"azureFileShares": [{"relativeMountPath": "afs",
                                                                     "azureFileUrl": "x", "acountName": "a"}]}},
     "mountVolumes.azureFileShares[0].acountName"),
    ({"pyTorchSettings": _PT, "containerSettings": {"imageSourceRegistry": {"imgae": "x"}}},
     "containerSettings.imageSourceRegistry.imgae"),
    ({"tensorFlowSettings": {**_PT, "workerCount": [2]}}, "tensorFlowSettings.workerCount"),
    ({"customToolkitSettings": {"commandLine": ["echo", "hi"]}}, "customToolkitSettings.commandLine"),
    ({"customMpiSettings": {"commandLine": "x", "processCount": True}}, "customMpiSettings.processCount"),
    ({"nodeCount": "2", "customToolkitSettings": {"commandLine": "x"}}, "nodeCount"),
    ({"cluster": "gpus", "customToolkitSettings": {"commandLine": "x"}}, "cluster"),
    # keys no Batch AI API version had (Batch AI ignored them; the official recipes fixed them later)
    ({"cntkSettings": {**_PT, "process_count": 2}}, "cntkSettings.process_count"),
    ({"chainerSettings": {**_PT, "masterCommandLineArgs": "-g"}}, "chainerSettings.masterCommandLineArgs"),
]


def _write_job_json(folder: Path, props: dict[str, Any], bom: bool = False) -> Path:
    import json
    path = folder / "job.json"
    text = json.dumps({"properties": {"nodeCount": 1, **props}})
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    (folder / "train.py").write_text("print('hi')\n")
    return path


@pytest.mark.parametrize(("props", "field"), JOB_JSON_CASES, ids=_ids(JOB_JSON_CASES))
def test_job_json_objects_are_checked_key_by_key(tmp_path: Path, props: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        JobSpec.from_batchai_json(_write_job_json(tmp_path, props))
    assert err.value.field == field


def test_a_misspelled_job_json_key_is_named_with_its_closest_match(tmp_path: Path) -> None:
    path = _write_job_json(tmp_path, {"pyTorchSettings": {**_PT, "commandLineArguments": "--epochs 2"}})
    with pytest.raises(SpecError) as err:
        JobSpec.from_batchai_json(path)
    assert "did you mean 'commandLineArgs'" in str(err.value)
    assert "pythonScriptFilePath" in str(err.value)  # the keys pyTorchSettings takes
    path = _write_job_json(tmp_path, {"chainerSettings": {**_PT, "masterCommandLineArgs": "-g"}})
    with pytest.raises(SpecError) as err:  # another toolkit's key: said which one takes it
        JobSpec.from_batchai_json(path)
    assert "did you mean 'commandLineArgs'" in str(err.value)
    assert "masterCommandLineArgs is a key of tensorFlowSettings" in str(err.value)


def test_a_job_json_with_a_utf8_bom_imports(tmp_path: Path) -> None:
    spec = JobSpec.from_batchai_json(_write_job_json(tmp_path, {"pyTorchSettings": {
        **_PT, "commandLineArgs": "--epochs 2"}}, bom=True))
    assert spec.script == "train.py" and spec.arguments == ["--epochs", "2"]


# -- the CLI: typed errors, exit code 2, no traceback ---------------------------------------------------
CLI_CASES: list[tuple[list[str], str]] = [
    (["cluster", "create", "-n", "bad name", "--max-nodes", "2"], "name:"),
    (["cluster", "create", "-n", "big", "--max-nodes", "1000000000"], "max_nodes:"),
    (["cluster", "create", "-n", "neg", "--min-nodes", "3", "--max-nodes", "2"], "min_nodes:"),
    (["cluster", "resize", "-n", "local", "-t", "1000000000"], "max_nodes"),
    (["cluster", "show", "-n", "nosuch"], "nosuch"),
    (["job", "create", "-c", "local", "-f", "{tmp}/missing.json"], "job.json:"),
    (["job", "create", "-c", "local", "-f", "{tmp}/job.json", "-e", ".."], "experiment:"),
    (["job", "create", "-c", "nosuch", "-f", "{tmp}/job.json"], "nosuch"),
    (["job", "create", "-c", "local", "-f", "{tmp}/job.json", "--tag", "lr"], "tag"),
    (["job", "create", "-c", "local", "-f", "{tmp}/typo.json"], "pyTorchSettings.commandLineArguments:"),
    (["job", "show", "-j", "no_such_run"], "no_such_run"),
]


@pytest.mark.parametrize(("argv", "expect"), CLI_CASES, ids=[f"{' '.join(a[:2])}-{i}" for i, (a, _e) in
                                                            enumerate(CLI_CASES)])
def test_cli_bad_input_is_one_typed_line_and_exit_code_2(ws: bai.Workspace, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         argv: list[str], expect: str) -> None:
    from batchai_jupyter import cli
    _write_job_json(tmp_path, {"pyTorchSettings": _PT})
    (tmp_path / "typo.json").write_text((tmp_path / "job.json").read_text().replace(
        '"pythonScriptFilePath"', '"commandLineArguments": "x", "pythonScriptFilePath"'))
    code = cli.main([a.format(tmp=tmp_path) for a in argv] + ["-w", str(ws.path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and expect in err and "Traceback" not in err
    assert ws.history.run_rows() == []
    assert [c.name for c in ws.clusters()] == ["local"]


# -- datastore paths: no NUL or other control character, refused before anything is sent ----------------
DATASTORE_CASES: list[tuple[str, Callable[[Any, Path], Any], str]] = [
    ("path-nul", lambda ds, _f: ds.path("a\0b"), "path"),
    ("path-newline", lambda ds, _f: ds.path("a\nb"), "path"),
    ("path-del", lambda ds, _f: ds.path("a\x7f"), "path"),
    ("upload", lambda ds, f: ds.upload(f, target_path="p\0q", show_progress=False), "target_path"),
    ("upload_files", lambda ds, f: ds.upload_files([f / "a.txt"], target_path="p\x1bq", show_progress=False),
     "target_path"),
    ("as_upload", lambda ds, _f: ds.path("m").as_upload(path_suffix="s\0"), "path_suffix"),
    ("as_download", lambda ds, _f: ds.path("m").as_download(path_on_compute="c\tx"), "path_on_compute"),
    ("download", lambda ds, f: ds.download(f / "out", prefix="p\0", show_progress=False), "prefix"),
]


@pytest.mark.parametrize(("call", "field"), [c[1:] for c in DATASTORE_CASES], ids=[c[0] for c in DATASTORE_CASES])
def test_datastore_paths_with_control_characters_are_refused(ws: bai.Workspace, tmp_path: Path,
                                                             call: Callable[[Any, Path], Any], field: str) -> None:
    ds = ws.get_default_datastore()
    (tmp_path / "a.txt").write_text("data\n")
    before = ds.list()
    with pytest.raises(SpecError) as err:
        call(ds, tmp_path)
    assert err.value.field == field
    assert "control character" in str(err.value) and "valid:" in str(err.value)
    assert ds.list() == before  # nothing was uploaded
    assert not (tmp_path / "out").exists()


# -- the magics: a UsageError IPython shows in one line, caused by a SpecError naming the option -----------
MAGIC_CASES: list[tuple[str, str, str, str]] = [  # (line, cell, option named, text shown)
    ("--bogus 1", "print(1)\n", "--bogus", "valid options: --cluster"),
    ("--cluster", "print(1)\n", "--cluster", "expected one argument"),
    ("--cluster nope", "print(1)\n", "--cluster", "known clusters: local"),
    ("--distribution horovod", "print(1)\n", "--distribution", "'pytorch', 'mpi', 'tensorflow'"),
    ("--image-pull sometimes", "print(1)\n", "--image-pull", "'missing', 'always', 'never'"),
    ("--image 'Bad Image'", "print(1)\n", "--image", "--image 'Bad Image'"),
    ("--nodes 0", "print(1)\n", "--nodes", "1 or more"),
    ("--nodes 5", "print(1)\n", "--nodes", "max_nodes"),
    ("--nodes two", "print(1)\n", "--nodes", "not a whole number"),
    ("--processes-per-node 2000", "print(1)\n", "--processes-per-node", "process_count_per_node"),
    ("--gpus-per-process -1", "print(1)\n", "--gpus-per-process", "0 or more"),
    ("--experiment ..", "print(1)\n", "--experiment", "experiment"),
    ("--experiment " + "x" * 201, "print(1)\n", "--experiment", "experiment"),
    ("--env NOEQUALS", "print(1)\n", "--env", "K=V"),
    ("--env 1A=2", "print(1)\n", "--env", "not a valid name"),
    ("--env A=1\0", "print(1)\n", "--env", "NUL"),
    ("--tag lr", "print(1)\n", "--tag", "K=V"),
    ("--input data", "print(1)\n", "--input", "ID=DATASTORE:PATH[:mount|download]"),
    ("--input D=workspacestore", "print(1)\n", "--input", "separated by ':'"),
    ("--input 1D=workspacestore:x", "print(1)\n", "--input", "not an identifier"),
    ("--input D=workspacestore:x:copy", "print(1)\n", "--input", "mount, download"),
    ("--input D=nosuchstore:x", "print(1)\n", "--input", "workspacestore"),
    ("--input D=workspacestore:a --input D=workspacestore:b", "print(1)\n", "--input", "given twice"),
    ("--input D=workspacestore:a\0b", "print(1)\n", "--input", "control character"),
    ("--input D=workspacestore:../up", "print(1)\n", "--input", "'..'"),
    ("--output M=workspacestore:", "print(1)\n", "--output", "path inside datastore"),
    ("--output M", "print(1)\n", "--output", "ID=DATASTORE:PATH"),
    ("--output M=workspacestore:m\x1bx", "print(1)\n", "--output", "control character"),
    ("", "   \n", "cell", "--command"),
    ("--command ''", "\n", "--command", "--command is empty"),
    ("--source /no/such/folder", "print(1)\n", "--source", "not a folder"),
    ("--script ../up.py", "print(1)\n", "--script", "inside the snapshot"),
    ("--cluster local epochs=3", "print(1)\n", "ARGS", "'epochs=3' is not an option"),
    ("epochs=3 -- --lr 1", "print(1)\n", "ARGS", "arguments of the script go after --"),
]


@pytest.fixture
def shell(ws: bai.Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real IPython shell with `%load_ext batchai_jupyter`, its magics on the test workspace."""
    from IPython.core.interactiveshell import InteractiveShell
    monkeypatch.setenv("BATCHAI_WORKSPACE", str(ws.path))
    monkeypatch.chdir(tmp_path_factory.mktemp("notebook-folder"))
    ip = InteractiveShell.instance()
    ip.extension_manager.load_extension("batchai_jupyter")
    return ip


@pytest.mark.parametrize(("line", "cell", "field", "expect"), MAGIC_CASES,
                         ids=[f"{c[2]}-{i}" for i, c in enumerate(MAGIC_CASES)])
def test_magic_bad_input_names_the_option_and_submits_nothing(ws: bai.Workspace, shell: Any, line: str,
                                                              cell: str, field: str, expect: str) -> None:
    from IPython.core.error import UsageError
    with pytest.raises(UsageError) as err:
        shell.run_cell_magic("batchai_job", line, cell)
    assert type(err.value) is UsageError  # what IPython shows as one line, without a traceback
    assert expect in str(err.value)
    typed = err.value.__cause__
    assert isinstance(typed, SpecError) and isinstance(typed, bai.BatchAIError), repr(typed)
    assert typed.field == field, str(typed)
    assert ws.history.run_rows() == []
    assert not list((ws.path / "snapshots").rglob("*.json"))  # nor snapshotted


# -- a source file nobody may read ----------------------------------------------------------------------
def test_an_unreadable_file_in_the_source_is_a_snapshot_error_naming_it(tmp_path: Path) -> None:
    """Root reads any file, so the client runs as `nobody` there (as a user's notebook would)."""
    import os
    import pwd
    import subprocess
    import sys
    import tempfile
    import textwrap
    base = Path(tempfile.mkdtemp(prefix="bai-unreadable-", dir="/tmp"))  # traversable by nobody
    try:
        base.chmod(0o777)
        src = base / "src"
        src.mkdir()
        (src / "train.py").write_text("print('hi')\n")
        (src / "private.key").write_text("not for the snapshot\n")
        (src / "private.key").chmod(0)
        code = textwrap.dedent(f"""
            from batchai_jupyter.errors import SnapshotError
            from batchai_jupyter.snapshot import SnapshotStore
            try:
                SnapshotStore({str(base / 'store')!r}).take({str(src)!r})
            except SnapshotError as exc:
                print("SnapshotError:", exc)
        """)
        user: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("nobody")
            except KeyError:
                pytest.skip(reason="running as root and no 'nobody' user to drop to")
            user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        out = subprocess.run([*user, sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, check=False, cwd=base)
        assert out.returncode == 0, out.stderr
        assert "SnapshotError:" in out.stdout and "private.key" in out.stdout and ".amlignore" in out.stdout
        assert "PermissionError" not in out.stdout + out.stderr
    finally:
        import shutil
        shutil.rmtree(base, ignore_errors=True)

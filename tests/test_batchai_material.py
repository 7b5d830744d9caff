"""Batch AI material run unchanged: job.json files in the official recipes' shapes (tests/material/),
for every toolkit of the 2018-05-01 and 2018-03-01 schemas, imported with only the storage account
given, run on the local cluster against Azurite (Azure Blob, real) and the Azure Files EMULATOR
(tests/datastores/file_emulator.py: a protocol-level stand-in, see its docstring for what it covers),
with real rclone FUSE mounts; the staged fallback; cluster.json mount volumes and setup task;
stdOutErrPathPrefix; the CLI's storage flags. The scripts are stand-ins (tests/material/scripts):
no deep-learning framework is installed here; a fake `cntk` stands for CNTK's BrainScript runner.
The pytorch job.json of each schema has containerSettings, as most recipes had: it names the
container tests' image by its stable tag (localhost/batchai-test:latest, ci/setup-containers.sh)
and runs there with real podman, its mounts and inputs seen inside; without podman it skips.
"""
from __future__ import annotations

import json
import os
import re
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import batchai_jupyter as bai
from batchai_jupyter.datastores import Datastore, datastore_class
from batchai_jupyter.datastores.mount_mode import fuse_available
from batchai_jupyter.errors import SpecError

from .containers.conftest import containers, image  # noqa: F401 -- image: the fixture _boxed() asks for
from .datastores.conftest import ACCOUNT, FAST, KEY, Server, _azurite, _file_emulator

MATERIAL = Path(__file__).with_name("material")
V5, V3 = MATERIAL / "2018-05-01", MATERIAL / "2018-03-01"
TOOLKITS = sorted(p.stem for p in V5.glob("*.json"))
PYTHON_BIN = str(Path(sys.executable).parent)
FUSE_MISSING = fuse_available(os.pathsep.join([PYTHON_BIN, os.environ.get("PATH", "")]))


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Azurite and the Files emulator of this module (each test uses containers/shares of its own
    workspace: they are created afresh per test below, named as the recipes name them)."""
    pytest.importorskip("azure.storage.blob", reason="azure-storage-blob is not installed")
    pytest.importorskip("azure.storage.fileshare", reason="azure-storage-file-share is not installed")
    blob = _azurite(tmp_path_factory.mktemp("azurite"))
    files = _file_emulator(tmp_path_factory.mktemp("files"))
    yield blob, files
    blob.stop()
    files.stop()


def _fresh(ws: bai.Workspace, servers: tuple[Server, Server], shares: tuple[str, ...],
           containers: tuple[str, ...]) -> dict[str, Datastore]:
    """Empty shares/containers of the recipes' names on the servers (handles to fill them, not
    registered), and one registered datastore per kind for the account with the emulators'
    endpoints: what makes a job's standard URLs reach them."""
    blob, files = servers
    for kind, endpoint, root in (("azure_blob", blob.endpoint, "container"), ("azure_file", files.endpoint, "share")):
        ws.register_datastore(f"seed{kind[6:]}", kind=kind, account_name=ACCOUNT, account_key=KEY,
                              endpoint=endpoint, create_if_not_exists=True, **{root: "seed"}, **FAST)
    made: dict[str, Datastore] = {}
    for kind, names, endpoint, root in (("azure_blob", containers, blob.endpoint, "container"),
                                        ("azure_file", shares, files.endpoint, "share")):
        for name in names:
            cls = datastore_class(kind)
            config, credential = cls.validate_options(name, {"account_name": ACCOUNT, root: name,
                                                             "account_key": KEY, "endpoint": endpoint, **FAST})
            ds = cls(name, config, credential)
            _empty(ds)
            made[name] = ds
    return made


def _empty(ds: Datastore) -> None:
    """The root made anew: a container/share of a fixed name is shared by this module's tests."""
    ds.create_root()  # type: ignore[attr-defined]
    if ds.kind == "azure_blob":
        for item in list(ds.container.list_blobs()):  # type: ignore[attr-defined]
            ds.container.delete_blob(item.name)  # type: ignore[attr-defined]
    else:
        _rm_share_tree(ds.share.get_directory_client(""))  # type: ignore[attr-defined]


def _rm_share_tree(directory: Any) -> None:
    for item in list(directory.list_directories_and_files()):
        if item["is_directory"]:
            sub = directory.get_subdirectory_client(item["name"])
            _rm_share_tree(sub)
            sub.delete_directory()
        else:
            directory.delete_file(item["name"])


def _fake_tool(tmp_path: Path, name: str) -> str:
    """A fake `cntk` (or `caffe`) executable: prints what it was asked to run."""
    folder = tmp_path / "fakebin"
    folder.mkdir(exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\necho \"fake {name} ran: $*\"\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return str(folder)


def _text(run: bai.Run) -> str:
    """Every std out/err file of the run, concatenated."""
    out = []
    files_dir = run.workspace.run_files_dir(run.id)
    for name in run.get_file_names():
        if name.endswith(".txt") and ("stdout" in name or "stderr" in name) and (files_dir / name).exists():
            out.append((files_dir / name).read_text(errors="replace"))
    return "\n".join(out)


def _data_file(tmp_path: Path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text("hello from the data container")
    return path


def _ranks(name: str) -> int:
    return {"custom": 1, "cntk-brainscript": 1, "caffe-python": 1, "tensorflow": 2, "pytorch": 2,
            "caffe2": 2}.get(name, 2)


def _boxed(request: pytest.FixtureRequest, job_json: Path) -> bool:
    """Does this job.json run in an image (containerSettings)? Then the test needs podman and
    the test image: it skips without them."""
    if "containerSettings" not in json.loads(job_json.read_text())["properties"]:
        return False
    request.getfixturevalue("image")
    return True


def _containers_left(run: bai.Run) -> list[str]:
    """`podman ps -a` names of this run's containers, once their watchdog had a moment."""
    key = run.id.rsplit("_", 1)[-1]
    end = time.time() + 15
    left = [c for c in containers() if key in c]
    while left and time.time() < end:
        time.sleep(0.2)
        left = [c for c in containers() if key in c]
    return left


def _check_expanded(text: str, toolkit: str) -> None:
    """The stand-in's printed arguments: every $VAR of the job.json expanded, per process."""
    lines = [line for line in text.splitlines() if line.startswith("standin toolkit=")]
    assert lines and not [line for line in lines if "$" in line], lines
    args = " ".join(lines)
    if toolkit == "tensorflow":  # 2 workers and 1 parameter server, each with its own index
        assert re.search(r"--ps_hosts \S+:\d+ ", args) and args.count("--task_index 0") == 2, lines
        assert "--task_index 1" in args
    elif toolkit == "pytorch":
        assert "--rank 0" in args and "--rank 1" in args and re.search(r"--dist-url tcp://\S+:\d+", args)
    elif toolkit == "caffe2":
        assert "--shard_id 0" in args and "--shard_id 1" in args


# -- 2018-05-01: job volumes on Azurite + the Files emulator, scripts read from a mounted share --------
@pytest.mark.skipif(FUSE_MISSING is not None, reason=f"no FUSE mounts here: {FUSE_MISSING}")
@pytest.mark.parametrize("toolkit", TOOLKITS)
def test_2018_05_01_job_runs_unchanged_with_fuse_mounts(ws, servers, tmp_path: Path, monkeypatch,
                                                         request, toolkit: str) -> None:
    boxed = _boxed(request, V5 / f"{toolkit}.json")
    stores = _fresh(ws, servers, ("scripts", "logs"), ("data",))
    stores["scripts"].upload(MATERIAL / "scripts", show_progress=False)
    stores["data"].upload_files([_data_file(tmp_path)], show_progress=False)
    monkeypatch.setenv("PATH", os.pathsep.join([_fake_tool(tmp_path, "cntk"), os.environ["PATH"]]))
    source = tmp_path / "job"
    source.mkdir()
    spec = bai.JobSpec.from_batchai_json(V5 / f"{toolkit}.json", workspace=ws, source_directory=source,
                                         storage_account=ACCOUNT, storage_key=KEY)
    assert spec.image == ("localhost/batchai-test:latest" if boxed else None)
    run = ws.experiment("material").submit(spec)
    run.wait_for_completion(show_output=False, timeout=240)
    assert run.status == "Completed", _text(run)
    props = run.get_details()["properties"]
    assert props["mount_mode"] == "fuse"
    text = _text(run)
    if toolkit == "cntk-brainscript":
        assert "fake cntk ran: configFile=" in text and "ConvNet.cntk" in text
    else:
        assert f"standin toolkit={toolkit.split('-')[0]}" in text
        assert text.count("standin read 'hello from the data container'") == _ranks(toolkit), text
        _check_expanded(text, toolkit)
        # in the image where the job.json names one: the FUSE-mounted script and data seen inside
        assert text.count("where=bai-test-image") == (_ranks(toolkit) if boxed else 0), text
    if boxed:
        assert _containers_left(run) == []
    # std out/err also under the prefix, in Batch AI's layout, on the logs share
    segment = props["job_output_directory_path_segment"]
    assert segment.endswith(f"experiments/material/jobs/{run.id}")
    logs = stores["logs"].list()
    registered = {d.name: d for d in ws.datastores()}
    assert {f"{ACCOUNT}_scripts", f"{ACCOUNT}_data", f"{ACCOUNT}_logs"} <= set(registered)
    assert any(p.startswith(f"{segment}/stdouterr/stdout") for p in logs), logs
    if toolkit != "cntk-brainscript":  # outputDirectories: <prefix>/<run id>/<pathSuffix> on the logs share
        assert any(p.startswith(f"{run.id}/Models/model-{toolkit.split('-')[0]}") for p in logs), logs
    if toolkit == "custom":  # job preparation's logs too, with its $AZ_BATCHAI_TASK_INDEX expanded
        assert "prepared on 0" in text
        assert any(p.startswith(f"{segment}/stdouterr/stdout-job_prep") for p in logs), logs
    # the volume named only by stdOutErrPathPrefix/outputs (logs) was not mounted
    assert set(spec.mounts) == {"scripts", "data"}
    assert KEY not in json.dumps(ws.history.run_row(run.id)["spec"])
    assert KEY not in json.dumps([r["config"] for r in ws.history.datastore_rows()])


def test_placeholder_without_storage_account_names_the_keyword(ws, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        bai.JobSpec.from_batchai_json(V5 / "custom.json", workspace=ws, source_directory=tmp_path)
    assert "storage_account=" in str(err.value) and "<AZURE_BATCHAI_STORAGE_ACCOUNT>" in str(err.value)
    assert not ws.datastores() or all(d.name == "workspacestore" for d in ws.datastores())


# -- 2018-03-01: a cluster.json's mount volume and setup task; scripts and data on the cluster volume --
def _material_cluster(ws: bai.Workspace, servers: tuple[Server, Server], tmp_path: Path) -> Datastore:
    stores = _fresh(ws, servers, ("external",), ())
    external = stores["external"]
    external.upload(MATERIAL / "scripts", show_progress=False)          # standin/ at the share's root
    external.upload_files([_data_file(tmp_path)], target_path="data", show_progress=False)
    cspec = bai.ClusterSpec.from_batchai_json(V3 / "cluster.json", workspace=ws, storage_account=ACCOUNT,
                                              storage_key=KEY)
    assert (cspec.min_nodes, cspec.max_nodes) == (0, 2)
    assert cspec.mount_volumes == [{"datastore": f"{ACCOUNT}_external", "path": "external"}]
    cspec.create(ws, "batchai", backend="local")
    return external


@pytest.mark.skipif(FUSE_MISSING is not None, reason=f"no FUSE mounts here: {FUSE_MISSING}")
@pytest.mark.parametrize("toolkit", TOOLKITS)
def test_2018_03_01_job_runs_on_a_cluster_json_cluster(ws, servers, tmp_path: Path, monkeypatch,
                                                        request, toolkit: str) -> None:
    boxed = _boxed(request, V3 / f"{toolkit}.json")
    external = _material_cluster(ws, servers, tmp_path)
    cluster = ws.cluster("batchai")
    assert "vmSize" in cluster.config["properties"]["note"]  # said, not silently dropped
    monkeypatch.setenv("PATH", os.pathsep.join([_fake_tool(tmp_path, "cntk"), os.environ["PATH"]]))
    source = tmp_path / "job"
    source.mkdir()
    spec = bai.JobSpec.from_batchai_json(V3 / f"{toolkit}.json", workspace=ws, source_directory=source,
                                         storage_account=ACCOUNT, storage_key=KEY)
    run = ws.experiment("material").submit(spec, cluster="batchai")
    run.wait_for_completion(show_output=False, timeout=240)
    assert run.status == "Completed", _text(run)
    text = _text(run)
    assert "node setup ran for the recipes" in text  # the setup task, before the first job of the node
    if toolkit == "cntk-brainscript":
        assert "fake cntk ran: configFile=" in text
    else:
        assert text.count("standin read 'hello from the data container'") == _ranks(toolkit), text
        _check_expanded(text, toolkit)
        # the cluster's volume and the job's inputs, seen inside the image the job.json names
        assert text.count("where=bai-test-image") == (_ranks(toolkit) if boxed else 0), text
    if boxed:
        assert _containers_left(run) == []
    # stdOutErrPathPrefix on the cluster volume: written through the mount, in Batch AI's layout
    segment = run.get_details()["properties"]["job_output_directory_path_segment"]
    listed = external.list()
    assert any(p.startswith(f"{segment}/stdouterr/stdout") for p in listed), listed
    if toolkit == "custom":  # job preparation's logs land under the prefix too
        assert "prepared on 0" in text
        assert any(p.startswith(f"{segment}/stdouterr/stdout-job_prep") for p in listed), listed
    # a second run on the same nodes does not run the setup task again
    again = ws.experiment("material").submit(bai.JobSpec.from_batchai_json(
        V3 / "custom.json", workspace=ws, source_directory=source, storage_account=ACCOUNT,
        storage_key=KEY), cluster="batchai")
    again.wait_for_completion(show_output=False, timeout=240)
    if _ranks(toolkit) == 2:  # node 0 and 1 both had their setup: the one-node rerun skips it
        assert "node setup ran" not in _text(again)
    assert "standin toolkit=custom" in _text(again)


# -- the CLI's storage flags and datastore group ----------------------------------------------------
def _cli(ws: bai.Workspace, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from batchai_jupyter.cli import main
    code = main([*argv[:2], "--workspace", str(ws.path), *argv[2:]])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_job_create_without_storage_account_names_the_flag(ws, capsys, monkeypatch) -> None:
    monkeypatch.delenv("AZURE_BATCHAI_STORAGE_ACCOUNT", raising=False)  # az batchai's default for the flag
    code, _out, err = _cli(ws, capsys, "job", "create", "-f", str(V5 / "custom.json"))
    assert code == 2
    assert "--storage-account-name" in err and "storage_account=" not in err


def test_cli_datastore_register_list_show_never_print_the_key(ws, servers, capsys, tmp_path: Path) -> None:
    _blob, files = servers
    code, out, err = _cli(ws, capsys, "datastore", "register", "-n", "cli_share", "--kind", "azure_file",
                          "--account-name", ACCOUNT, "--share", "clishare", "--account-key", KEY,
                          "--endpoint", files.endpoint, "--create")
    assert code == 0, err
    assert "clishare" in out and KEY not in out
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "a.txt").write_text("A")
    assert _cli(ws, capsys, "datastore", "upload", "-n", "cli_share", "-s", str(tmp_path / "up"),
                "-t", "in")[0] == 0
    code, out, _ = _cli(ws, capsys, "datastore", "list", "-o", "json")
    assert code == 0 and KEY not in out and {"name": "cli_share", "kind": "azure_file"} in json.loads(out)
    code, out, _ = _cli(ws, capsys, "datastore", "show", "-n", "cli_share", "-o", "json")
    shown = json.loads(out)
    assert code == 0 and shown["share"] == "clishare" and shown["credential_type"] == "account_key"
    assert KEY not in out
    assert _cli(ws, capsys, "datastore", "list", "-n", "cli_share")[1].split() == ["in/a.txt"]
    code, out, _ = _cli(ws, capsys, "datastore", "download", "-n", "cli_share", "-t", str(tmp_path / "down"))
    assert code == 0 and (tmp_path / "down" / "in" / "a.txt").read_text() == "A"
    code, _out, err = _cli(ws, capsys, "datastore", "register", "-n", "bad", "--kind", "azure_blob",
                           "--account-name", ACCOUNT, "--container", "cc1", "--account-key", KEY, "--sas", "x")
    assert code == 2 and "credential" in err and KEY not in err


@pytest.mark.skipif(FUSE_MISSING is not None, reason=f"no FUSE mounts here: {FUSE_MISSING}")
def test_cli_cluster_with_an_afs_volume_runs_a_job_json_from_it(ws, servers, capsys, tmp_path: Path) -> None:
    stores = _fresh(ws, servers, ("afsshare",), ())
    stores["afsshare"].upload(MATERIAL / "scripts", show_progress=False)
    stores["afsshare"].upload_files([_data_file(tmp_path)], target_path="data", show_progress=False)
    code, _out, err = _cli(ws, capsys, "cluster", "create", "-n", "afs", "--max-nodes", "1",
                           "--afs-name", "afsshare", "--afs-mount-path", "afs",
                           "--storage-account-name", ACCOUNT, "--storage-account-key", KEY)
    assert code == 0, err
    assert ws.cluster("afs").config["mount_volumes"] == [{"datastore": f"{ACCOUNT}_afsshare", "path": "afs"}]
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"properties": {"nodeCount": 1, "customToolkitSettings": {
        "commandLine": "python $AZ_BATCHAI_MOUNT_ROOT/afs/standin/train.py afs --data $AZ_BATCHAI_MOUNT_ROOT/afs/data"},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs"}}))
    code, out, err = _cli(ws, capsys, "job", "create", "-c", "afs", "-f", str(job), "-o", "json")
    assert code == 0, err
    run_id = json.loads(out)["name"]
    code, out, _ = _cli(ws, capsys, "job", "wait", "-j", run_id)
    assert code == 0, out
    run = ws.get_run(run_id)
    assert "standin read 'hello from the data container'" in _text(run)
    segment = run.get_details()["properties"]["job_output_directory_path_segment"]
    assert any(p.startswith(f"{segment}/stdouterr/") for p in stores["afsshare"].list())


def test_cli_cluster_create_from_cluster_json(ws, servers, capsys, tmp_path: Path) -> None:
    _fresh(ws, servers, ("external",), ())
    code, _out, err = _cli(ws, capsys, "cluster", "create", "-n", "fromjson", "-f", str(V3 / "cluster.json"),
                           "--storage-account-name", ACCOUNT, "--storage-account-key", KEY)
    assert code == 0, err
    config = ws.cluster("fromjson").config
    assert (config["min_nodes"], config["max_nodes"]) == (0, 2)
    assert config["mount_volumes"] == [{"datastore": f"{ACCOUNT}_external", "path": "external"}]
    assert "node setup ran for $GREETING" in config["setup_task"] and "GREETING=" in config["setup_task"]
    code, _out, err = _cli(ws, capsys, "cluster", "create", "-n", "nokey", "-f", str(V3 / "cluster.json"))
    assert code == 2 and "--storage-account-name" in err
    (tmp_path / "export").mkdir()
    code, _out, err = _cli(ws, capsys, "cluster", "create", "-n", "withnfs", "--nfs", str(tmp_path / "export"),
                           "--setup-task", "echo hi")
    assert code == 0, err
    config = ws.cluster("withnfs").config
    assert config["mount_volumes"][0]["path"] == "nfs" and config["setup_task"] == "echo hi"
    assert ws.datastore(config["mount_volumes"][0]["datastore"]).kind == "local"


# -- the rest of the contract, without a run that needs FUSE ----------------------------------------
def test_brainscript_without_cntk_fails_the_run_saying_so(ws, tmp_path: Path, monkeypatch) -> None:
    job = json.loads((V5 / "cntk-brainscript.json").read_text())
    props = job["properties"]
    for key in ("mountVolumes", "stdOutErrPathPrefix", "outputDirectories"):
        props.pop(key)
    (tmp_path / "ConvNet.cntk").write_text("command = train\n")
    props["cntkSettings"]["configFilePath"] = "ConvNet.cntk"
    props["cntkSettings"]["commandLineArgs"] = "outputDir=out"
    spec = bai.JobSpec.from_batchai_json(job, workspace=ws, source_directory=tmp_path)
    assert spec.script is None and "cntk configFile=ConvNet.cntk outputDir=out" in str(spec.command)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "cntk").exists())
    monkeypatch.setenv("PATH", path)  # the engine and agents this submit starts inherit it
    run = ws.experiment("material").submit(spec)
    run.wait_for_completion(show_output=False, timeout=120, raise_on_error=False)
    assert run.status == "Failed"
    text = _text(run)
    assert "BrainScript needs cntk on the node" in text and "pythonScriptFilePath" not in text
    with pytest.raises(SpecError) as err:
        bai.JobSpec.from_batchai_json({"cntkSettings": {"languageType": "BrainScript"}}, workspace=ws,
                                      source_directory=tmp_path)
    assert "cntkSettings.configFilePath" in str(err.value)


def test_caffe2_is_one_process_per_node_without_mpi(ws) -> None:
    spec = bai.JobSpec.from_batchai_json(V5 / "caffe2.json", workspace=ws, source_directory=MATERIAL,
                                         storage_account="acct", storage_key="a2V5")
    assert (spec.distribution, spec.node_count, spec.process_count_per_node) == (None, 2, 1)
    assert "$AZ_BATCHAI_TASK_INDEX" in spec.arguments


def test_cluster_json_and_mount_volumes_bad_input(ws, tmp_path: Path) -> None:
    bad = [
        ({"properties": {"scaleSettings": {"manual": {"targetNodeCount": 1},
                                           "autoScale": {"maximumNodeCount": 2}}}}, "scaleSettings"),
        ({"properties": {"scaleSettings": {"autoScale": {"maximumNodeCount": -1}}}},
         "scaleSettings.autoScale.maximumNodeCount"),
        ({"properties": {"nodeSetup": {"setupTask": {}}}}, "nodeSetup.setupTask.commandLine"),
        ({"properties": {"nodeSetup": {"setupTask": {"commandLine": "x", "secrets": [{"name": "A",
                                                                                      "value": "b"}]}}}},
         "nodeSetup.setupTask.secrets"),
        ({"properties": {"vmSizes": "x"}}, "vmSizes"),
        ({"properties": {"nodeSetup": {"mountVolumes": {"azureFileShares": [{
            "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/s",
            "relativeMountPath": "afs"}]}}}}, "<AZURE_BATCHAI_STORAGE_ACCOUNT>"),
    ]
    for doc, needle in bad:
        with pytest.raises(SpecError) as err:
            bai.ClusterSpec.from_batchai_json(doc, workspace=ws)
        assert needle in str(err.value), str(err.value)
    spec = bai.ClusterSpec.from_batchai_json({"properties": {"vmSize": "STANDARD_NC6", "scaleSettings": {
        "manual": {"targetNodeCount": 2, "nodeDeallocationOption": "terminate"}}}}, workspace=ws)
    assert (spec.min_nodes, spec.max_nodes, spec.node_deallocation_option) == (2, 2, "terminate")
    assert spec.properties["ignored"] == {"vmSize": "STANDARD_NC6"}
    for volumes, needle in (([{"datastore": "nope", "path": "afs"}], "mount_volumes[0].datastore"),
                            ([{"datastore": "workspacestore", "path": "../up"}], "mount_volumes[0].path"),
                            ("afs", "mount_volumes"),
                            ([{"datastore": "workspacestore", "path": "a"}, {"datastore": "workspacestore",
                                                                           "path": "a"}], "mounted twice")):
        with pytest.raises(SpecError) as err:
            ws.create_cluster("bad", mount_volumes=volumes)
        assert needle in str(err.value), str(err.value)
    with pytest.raises(SpecError) as err:
        ws.create_cluster("bad", mount_mode="nfs")
    assert "mount_mode" in str(err.value) and "staged" in str(err.value)


def test_local_cluster_volume_and_setup_task_on_every_node(ws, tmp_path: Path) -> None:
    nfs = tmp_path / "nfs"
    (nfs / "shared").mkdir(parents=True)
    (nfs / "shared" / "hello.txt").write_text("from the nfs export")
    ws.register_datastore("nfs", kind="local", path=str(nfs))
    ws.create_cluster("vols", max_nodes=2, mount_volumes=[{"datastore": "nfs", "path": "nfs"}],
                      setup_task="echo setting up node $BATCHAI_NODE_INDEX")
    src = tmp_path / "job"
    src.mkdir()
    (src / "main.py").write_text(
        "import os\n"
        "print(open(os.path.join(os.environ['AZ_BATCHAI_MOUNT_ROOT'], 'nfs', 'shared', 'hello.txt')).read())\n")
    run = ws.experiment("vols").submit(bai.JobSpec(source_directory=src, script="main.py", node_count=2),
                                       cluster="vols")
    run.wait_for_completion(show_output=False, timeout=120)
    text = _text(run)
    assert text.count("from the nfs export") == 2
    assert "setting up node 0" in text and "setting up node 1" in text
    again = ws.experiment("vols").submit(bai.JobSpec(source_directory=src, script="main.py", node_count=2),
                                         cluster="vols")
    again.wait_for_completion(show_output=False, timeout=120)
    assert "setting up node" not in _text(again) and _text(again).count("from the nfs export") == 2


RECIPES_GIT = os.environ.get("BATCHAI_RECIPES_GIT", "")


@pytest.mark.skipif(not os.path.isdir(RECIPES_GIT), reason="BATCHAI_RECIPES_GIT does not name a clone of "
                    "github.com/Azure/BatchAI (the official recipes are not vendored here)")
def test_official_recipes_import() -> None:
    """The figure tools/count_batchai_recipes.py prints; the ones left out are invalid JSON or name
    keys no Batch AI API version had (its REST specs and the repository's own schemas: the
    recipes' history calls them typos and fixes them; Batch AI had ignored them)."""
    from tools.count_batchai_recipes import count
    result = count(RECIPES_GIT)
    assert result["imported"] >= 61, result
    refused = [r for r in result["failures"] if "JSONDecodeError" not in r]
    assert all("cntkSettings.process_count" in r or "chainerSettings.masterCommandLineArgs" in r
               for r in refused), result["failures"]


def test_import_without_workspace_uses_the_configured_one(ws, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BATCHAI_WORKSPACE", str(ws.path))
    job = json.loads((V5 / "custom.json").read_text())
    job["properties"].pop("outputDirectories")  # logs: named only by stdOutErrPathPrefix now
    spec = bai.JobSpec.from_batchai_json(job, source_directory=tmp_path, storage_account="acct",
                                         storage_sas="?sv=2020&sig=abc")
    names = {d.name for d in ws.datastores()}
    assert {"acct_scripts", "acct_logs", "acct_data"} <= names
    assert set(spec.mounts) == {"scripts", "data"}  # a volume named only by stdOutErrPathPrefix
    assert spec.std_out_err_path_prefix == {"datastore": "acct_logs", "path": ""}
    assert ws.secrets.get("datastores", "acct_logs") == {"sas_token": "sv=2020&sig=abc"}
    assert "sig=abc" not in json.dumps([r["config"] for r in ws.history.datastore_rows()])

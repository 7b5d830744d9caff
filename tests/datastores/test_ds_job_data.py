"""Registration, data references in specs, credentials for nodes, and job.json import."""
from __future__ import annotations

import calendar
import json
import sqlite3
import stat
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest

import batchai_jupyter as bai
from batchai_jupyter.datastores import KINDS, output_reference
from batchai_jupyter.datastores.credentials import STAGING_MARGIN_SECONDS, node_data_config

from .conftest import ACCOUNT, KEY, register, unique


@pytest.fixture
def job_src(tmp_path: Path) -> Path:
    src = tmp_path / "job"
    src.mkdir()
    (src / "train.py").write_text("print('hi')\n")
    return src


def _spec(src: Path, **data) -> bai.JobSpec:
    return bai.JobSpec(source_directory=src, script="train.py", **data)


# -- registration ------------------------------------------------------------------------------
def test_fresh_workspace_has_the_default_local_datastore(ws) -> None:
    ds = ws.get_default_datastore()
    assert (ds.name, ds.kind) == ("workspacestore", "local")
    assert Path(ds.config["path"]).is_dir()


def test_register_rejects_bad_input_naming_the_field(ws, tmp_path: Path) -> None:
    with pytest.raises(bai.SpecError) as err:
        ws.register_datastore("x", kind="s3", path="/tmp")
    assert err.value.field == "kind" and set(KINDS) <= set(err.value.valid)
    with pytest.raises(bai.SpecError, match="name"):
        ws.register_datastore("bad name!", kind="local", path=str(tmp_path))
    (tmp_path / "file").write_text("x")
    with pytest.raises(bai.DatastoreError, match="not a folder"):
        ws.register_datastore("x", kind="local", path=str(tmp_path / "file"))
    with pytest.raises(bai.SpecError) as err:
        ws.register_datastore("x", kind="local", path=str(tmp_path), share="s")
    assert err.value.field == "share" and "path" in err.value.valid
    with pytest.raises(bai.SpecError) as err:
        ws.register_datastore("x", kind="azure_blob", account_name="acct", container="c1c")
    assert err.value.field == "credential"
    with pytest.raises(bai.SpecError) as err:
        ws.register_datastore("x", kind="azure_blob", account_name="acct", container="c1c",
                              account_key=KEY, sas_token="sv=1&sig=abc")
    assert err.value.field == "credential" and KEY not in str(err.value)
    with pytest.raises(bai.SpecError) as err:
        ws.register_datastore("x", kind="azure_blob", account_name="acct", container="Bad_Name",
                              account_key=KEY)
    assert err.value.field == "container"
    with pytest.raises(bai.SpecError) as err:
        ws.register_datastore("x", kind="azure_file", account_name="acct", container="c1c",
                              account_key=KEY)
    assert err.value.field == "container" and "share" in err.value.valid
    with pytest.raises(bai.DatastoreError, match="not found.*workspacestore"):
        ws.datastore("nope")


def test_local_folder_may_be_missing_here_and_can_be_created(ws, tmp_path: Path) -> None:
    """An NFS path may exist only on the nodes; create_if_not_exists makes it here."""
    elsewhere = ws.register_datastore("onnodes", kind="local", path=str(tmp_path / "mnt" / "nfs"))
    assert elsewhere.list() == [] and not (tmp_path / "mnt").exists()
    made = ws.register_datastore("made", kind="local", path=str(tmp_path / "new" / "data"),
                                 create_if_not_exists=True)
    assert Path(made.config["path"]).is_dir()


def test_credentials_live_only_in_the_secrets_file(ws) -> None:
    conn = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:1/{ACCOUNT};")
    ds = ws.register_datastore("blob", kind="azure_blob", container="data", connection_string=conn)
    assert ds.config["endpoint"] == f"http://127.0.0.1:1/{ACCOUNT}"
    assert ds.config["account_name"] == ACCOUNT
    secrets = ws.path / "secrets.json"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert json.loads(secrets.read_text())["datastores"]["blob"] == {"account_key": KEY}
    db = sqlite3.connect(ws.path / "history.db")
    assert KEY not in json.dumps(db.execute("SELECT * FROM datastores").fetchall())
    assert KEY not in repr(ds) and KEY not in repr(ws.datastores())


# -- data references in a spec -----------------------------------------------------------------
def test_bad_references_fail_before_anything_runs(ws, job_src: Path) -> None:
    ds = ws.get_default_datastore()
    cases = [
        (bai.DatastoreError, {"inputs": {"DATA": "nosuch:mnist"}}, "nosuch"),
        (bai.SpecError, {"inputs": {"DATA": ds.path("a").as_download()},
                         "outputs": {"M": "workspacestore:../x"}}, "outputs.M.path"),
        (bai.SpecError, {"inputs": {"DATA": {"datastore": "workspacestore", "path": "a/../../etc"}}},
         "inputs.DATA.path"),
        (bai.SpecError, {"outputs": {"M": {"datastore": "workspacestore", "path": "m",
                                           "path_suffix": "../../x"}}}, "outputs.M.path_suffix"),
        (bai.SpecError, {"inputs": {"1DATA": ds.path("a")}}, "inputs"),
        (bai.SpecError, {"inputs": {"my-data": ds.path("a")}}, "inputs"),
        (bai.SpecError, {"outputs": {"../M": ds.path("a").as_upload()}}, "outputs"),
        (bai.SpecError, {"outputs": {"M": ds.path("a").as_download()}}, "outputs.M.mode"),
        (bai.SpecError, {"mounts": {"../up": ds}}, "mounts"),
        (bai.SpecError, {"inputs": {"DATA": 42}}, "inputs.DATA"),
    ]
    for error, data, needle in cases:
        with pytest.raises(error) as err:
            ws.experiment("bad").submit(_spec(job_src, **data))
        assert needle in str(err.value), (data, str(err.value))
    with pytest.raises(bai.SpecError, match="path_suffix"):
        ds.path("m").as_upload(path_suffix="../x")
    assert ws.history.run_rows() == []  # nothing was queued
    assert not list((ws.path / "snapshots").rglob("*.json"))  # nor snapshotted


def test_stored_spec_holds_plain_references(ws, job_src: Path, tmp_path: Path) -> None:
    ds = ws.get_default_datastore()
    data = ws.register_datastore("nfs", kind="local", path=str(tmp_path))
    spec = _spec(job_src, inputs={"A": ds.path("x"), "B": "nfs:y/z:mount"},
                 outputs={"M": ds.path("models").as_upload(path_suffix="best")}, mounts={"shared": data})
    from batchai_jupyter.datastores import check_job_data
    assert check_job_data(ws, spec) == {
        "inputs": {"A": {"datastore": "workspacestore", "path": "x", "mode": "download"},
                   "B": {"datastore": "nfs", "path": "y/z", "mode": "mount"}},
        "outputs": {"M": {"datastore": "workspacestore", "path": "models", "mode": "upload",
                          "path_suffix": "best"}},
        "mounts": {"shared": {"datastore": "nfs", "path": "", "mode": "mount"}}}


def test_node_data_config_gives_narrow_expiring_sas(ws, request, tmp_path: Path) -> None:
    register(ws, "azure_blob", request, tmp_path, name="blob")
    register(ws, "azure_file", request, tmp_path, name="share")
    run = {"id": "exp_1_abc", "spec": {
        "max_wall_clock_seconds": 600,
        "inputs": {"A": {"datastore": "blob", "path": "in", "mode": "download"},
                   "B": {"datastore": "share", "path": "in", "mode": "download"}},
        "outputs": {"M": {"datastore": "blob", "path": "models", "mode": "upload", "path_suffix": "s"},
                    "N": {"datastore": "share", "path": "out", "mode": "upload"}},
        "mounts": {}}}
    before = time.time()
    data = node_data_config(ws, run)
    assert KEY not in json.dumps(data)
    assert data["outputs"]["M"]["destination"] == "models/exp_1_abc/s"
    assert data["outputs"]["N"]["destination"] == "out/exp_1_abc"
    for field, key, perms in (("inputs", "A", "rl"), ("inputs", "B", "rl"), ("outputs", "M", "acw"),
                              ("outputs", "N", "cwd")):
        sas = parse_qs(data[field][key]["credential"]["sas_token"])
        assert sorted(sas["sp"][0]) == sorted(perms), (field, key, sas["sp"])
        assert sas["sr"][0] in ("c", "s")  # the container or share, not the account
        expiry = calendar.timegm(time.strptime(sas["se"][0], "%Y-%m-%dT%H:%M:%SZ"))
        assert before + 600 < expiry <= time.time() + 600 + STAGING_MARGIN_SECONDS + 1


# -- the key never leaks ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["azure_blob", "azure_file"])
def test_no_secret_anywhere_in_the_workspace_after_a_run(ws, request, tmp_path: Path, kind: str) -> None:
    store = register(ws, kind, request, tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("payload")
    store.upload(tmp_path / "d", "in", show_progress=False)
    src = tmp_path / "job"
    src.mkdir()
    (src / "train.py").write_text(
        "import os\nprint(sorted(os.environ))\n"
        "open(os.path.join(os.environ['AZ_BATCHAI_OUTPUT_M'], 'o.txt'), 'w').write('out')\n")
    run = ws.experiment("leak").submit(bai.JobSpec(
        source_directory=src, script="train.py", inputs={"D": store.path("in")},
        outputs={"M": store.path("o").as_upload()}))
    run.wait_for_completion(show_output=False, timeout=120)
    ref = output_reference(run, "M")
    assert store.list(ref.path + "/") == [f"o/{run.id}/o.txt"]
    hits = []
    for path in ws.path.rglob("*"):
        if path.is_file() and path.name != "secrets.json" and KEY.encode() in path.read_bytes():
            hits.append(str(path))
    assert hits == []
    # nor the SAS tokens given to the node: not in its manifest, logs or anywhere else
    leftovers = [str(p) for p in ws.path.rglob("*")
                 if p.is_file() and p.name != "secrets.json" and b"sig=" in p.read_bytes()]
    assert leftovers == []


# -- Batch AI job.json --------------------------------------------------------------------------
def test_batchai_job_json_data_fields(ws, request, tmp_path: Path) -> None:
    files = request.getfixturevalue("file_emulator")
    blob = register(ws, "azure_blob", request, tmp_path, name="blobdata")
    nfs = tmp_path / "nfs"
    (nfs / "data").mkdir(parents=True)
    ws.register_datastore("nfs", kind="local", path=str(nfs))
    share = unique()
    job = {"properties": {
        "nodeCount": 1,
        "customToolkitSettings": {"commandLine": "python train.py"},
        "jobPreparation": {"commandLine": "echo prep"},
        "mountVolumes": {
            "azureFileShares": [{"accountName": ACCOUNT, "azureFileUrl": f"{files.endpoint}/{share}",
                                 "credentials": {"accountKey": KEY}, "relativeMountPath": "afs"}],
            "azureBlobFileSystems": [{"accountName": ACCOUNT, "containerName": blob.config["container"],
                                      "credentials": {"accountKey": KEY}, "relativeMountPath": "bfs"}],
            "unmanagedFileSystems": [{"mountCommand": "mount -t nfs 10.200.0.9:/export",
                                      "relativeMountPath": "nfs2"}]},
        "inputDirectories": [{"id": "DATASET", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/mnist"},
                             {"id": "LOCAL", "path": f"{nfs}/data"}],
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
                               "pathSuffix": "Models"}]}}
    spec = bai.JobSpec.from_batchai_json(job, source_directory=tmp_path, workspace=ws)
    share_ds = next(d for d in ws.datastores() if d.kind == "azure_file")
    assert share_ds.config["share"] == share and share_ds.config["endpoint"] == files.endpoint
    assert spec.inputs == {"DATASET": {"datastore": share_ds.name, "path": "mnist", "mode": "download"},
                           "LOCAL": {"datastore": "nfs", "path": "data", "mode": "mount"}}
    assert spec.outputs == {"MODEL": {"datastore": share_ds.name, "path": "", "mode": "upload",
                                      "path_suffix": "Models"}}
    # the blob volume is not used by inputs/outputs: it stays a mount, on the registered datastore
    assert spec.mounts == {"bfs": {"datastore": "blobdata", "path": "", "mode": "mount"}}
    assert spec.job_preparation == ("mkdir -p $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs2 && mount -t nfs "
                                    "10.200.0.9:/export $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs2 && echo prep")
    from batchai_jupyter.datastores import output_destination
    assert output_destination(spec.outputs["MODEL"], "r1") == "r1/Models"
    assert output_destination(spec.outputs["MODEL"], "r2") == "r2/Models"  # runs never collide
    assert KEY not in json.dumps(spec.to_dict())


def test_batchai_job_json_bad_data_fields(ws, tmp_path: Path) -> None:
    base = {"customToolkitSettings": {"commandLine": "python train.py"}}
    bad = [
        ({"inputDirectories": [{"id": "X", "path": "/nowhere/at/all"}]}, "inputDirectories[0].path"),
        ({"mountVolumes": {"fileServers": [{"relativeMountPath": "x"}]}}, "fileServers"),
        ({"mountVolumes": {"azureBlobFileSystems": [{"accountName": "acct", "containerName": "cont",
                                                      "relativeMountPath": "b"}]}}, "accountKey"),
        ({"mountVolumes": {"azureBlobFileSystems": [{"accountName": "acct", "containerName": "cont",
                                                      "relativeMountPath": "b",
                                                      "credentials": {"accountKeySecretReference": {}}}]}},
         "accountKeySecretReference"),
        ({"outputDirectories": [{"id": "M"}]}, "outputDirectories[0]"),
    ]
    for extra, needle in bad:
        with pytest.raises(bai.SpecError) as err:
            bai.JobSpec.from_batchai_json({**base, **extra}, source_directory=tmp_path, workspace=ws)
        assert needle in str(err.value), str(err.value)


def test_imported_batchai_job_runs_on_its_file_share(ws, request, tmp_path: Path) -> None:
    files = request.getfixturevalue("file_emulator")
    share = unique()
    ws.register_datastore("afs", kind="azure_file", account_name=ACCOUNT, share=share, account_key=KEY,
                          endpoint=files.endpoint, create_if_not_exists=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("1,2\n3,4\n")
    ws.datastore("afs").upload(tmp_path / "data", "mnist", show_progress=False)
    src = tmp_path / "job"
    src.mkdir()
    (src / "train.py").write_text(
        "import os\n"
        "rows = open(os.path.join(os.environ['AZ_BATCHAI_INPUT_DATASET'], 'train.csv')).read().split()\n"
        "open(os.path.join(os.environ['AZ_BATCHAI_OUTPUT_MODEL'], 'model.txt'), 'w').write(str(len(rows)))\n")
    job = {"properties": {
        "nodeCount": 1,
        "pyTorchSettings": {"pythonScriptFilePath": "train.py"},
        "mountVolumes": {"azureFileShares": [{"accountName": ACCOUNT, "relativeMountPath": "afs",
                                              "azureFileUrl": f"{files.endpoint}/{share}"}]},
        "inputDirectories": [{"id": "DATASET", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/mnist"}],
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs/models",
                               "pathSuffix": "final"}]}}
    (src / "job.json").write_text(json.dumps(job))
    spec = bai.JobSpec.from_batchai_json(src / "job.json", workspace=ws)
    run = ws.experiment("imported").submit(spec)
    run.wait_for_completion(show_output=False, timeout=120)
    ds = ws.datastore("afs")
    assert ds.list("models/") == [f"models/{run.id}/final/model.txt"]
    ds.download(tmp_path / "got", prefix="models/", show_progress=False)
    assert (tmp_path / "got" / "models" / run.id / "final" / "model.txt").read_text() == "2"


def test_missing_azure_sdk_says_how_to_install_it(tmp_path: Path) -> None:
    """Without the [azure] extra, an Azure datastore still registers and then says what to install."""
    import subprocess
    import sys
    code = (
        "import sys\n"
        "sys.modules['azure.storage.blob'] = None  # as if azure-storage-blob were not installed\n"
        "import batchai_jupyter as bai\n"
        f"ws = bai.Workspace.create({str(tmp_path / 'ws')!r})\n"
        "ds = ws.register_datastore('b', kind='azure_blob', account_name='acct', container='data',\n"
        "                           sas_token='sv=1&sig=x')\n"
        "try:\n"
        "    ds.list()\n"
        "except bai.DatastoreError as exc:\n"
        "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert "pip install 'batchai-jupyter[azure]'" in out.stdout, out.stderr

"""A root engine runs local jobs as an unprivileged per-cluster account, away from the workspace."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.errors import SpecError
from tests.conftest import session_tag
from tests.support import reachable_python_venv, wait_until

VALUE = "iso-s3cret-77a1"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None,
                                reason="needs root and useradd: jobs of a non-root engine run as its user")

PROBE = textwrap.dedent("""
    import json, os, pwd, sys
    from batchai_jupyter import Run
    ws = os.environ["WS"]
    def can_read(path):
        try:
            with open(path, "rb") as fh:
                fh.read(1)
            return True
        except OSError:
            return False
    os.makedirs("pkg", exist_ok=True)
    with open("pkg/notes.txt", "w") as fh:           # a write into its own source tree
        fh.write("mine")
    with open("outputs/result.txt", "w") as fh:
        fh.write("done")
    Run.get_context().log("ok", 1)
    other = sys.argv[1] if len(sys.argv) > 1 else ""
    print(json.dumps({
        "user": pwd.getpwuid(os.geteuid()).pw_name, "uid": os.geteuid(),
        "secret_env": os.environ.get("API_KEY") == "SECRET_VALUE",
        "secrets_json": can_read(os.path.join(ws, "secrets.json")),
        "history_db": can_read(os.path.join(ws, "history.db")),
        "other_environ": can_read(f"/proc/{other}/environ") if other else None,
        "home": os.environ["HOME"], "cwd": os.getcwd(),
    }))
""").replace("SECRET_VALUE", VALUE)


@pytest.fixture(scope="module")
def reachable_python() -> Iterator[str]:
    with reachable_python_venv() as python:
        yield python


@pytest.fixture
def iso_ws(ws: bai.Workspace, monkeypatch: pytest.MonkeyPatch, reachable_python: str) -> Iterator[bai.Workspace]:
    """The default for local clusters (the test session sets run_as=engine for the others).
    Teardown removes the node folders outside the workspace and the accounts this test made."""
    monkeypatch.delenv("BATCHAI_LOCAL_RUN_AS", raising=False)
    ws.reachable_python = reachable_python  # type: ignore[attr-defined]
    before = {entry.pw_name for entry in pwd.getpwall()}
    yield ws
    from batchai_jupyter.compute.local.accounts import account_name, isolated_root
    from batchai_jupyter.engine.control import stop_engine
    stop_engine(ws.path)
    clusters = ws.clusters()
    for cluster in clusters:  # node folders outside the workspace go with it
        shutil.rmtree(isolated_root(ws.path, cluster.name).parent, ignore_errors=True)
    now = {entry.pw_name for entry in pwd.getpwall()}
    for cluster in clusters:
        name = account_name({}, cluster.name)   # what run_as="auto" made for it
        if name and name in now - before:
            subprocess.run(["userdel", name], check=False, capture_output=True)


def _name(base: str) -> str:
    """A cluster name of this session: its account (batchai-<cluster>) is machine-wide."""
    return f"{base}-{session_tag()}"


def _probe(ws: bai.Workspace, tmp_path: Path, cluster: str, *args: str) -> bai.Run:
    src = tmp_path / f"src-{cluster}"
    src.mkdir(exist_ok=True)
    (src / "probe.py").write_text(PROBE)
    return ws.experiment("iso").submit(JobSpec(source_directory=src, script="probe.py", arguments=list(args),
                                               secrets={"API_KEY": VALUE},
                                               environment_variables={"WS": str(ws.path)}), cluster=cluster)


def test_jobs_run_as_the_clusters_account_and_cannot_read_the_workspace(iso_ws: bai.Workspace,
                                                                         tmp_path: Path) -> None:
    ws, iso1 = iso_ws, _name("iso1")
    ws.create_cluster(iso1, backend="local", max_nodes=1, python=ws.reachable_python)
    run = _probe(ws, tmp_path, iso1)
    assert run.wait_for_completion(timeout=120, raise_on_error=False)["status"] == "Completed", \
        run.file_path("stderr.txt").read_text()
    seen = json.loads(run.file_path(run.main_log()).read_text().splitlines()[-1])
    assert seen["user"] == f"batchai-{iso1}" and seen["uid"] != 0
    assert seen["secret_env"] is True                      # its own secret it gets
    assert seen["secrets_json"] is False and seen["history_db"] is False
    assert not seen["cwd"].startswith(str(ws.path))        # node folders outside the workspace
    assert run.file_path("outputs/result.txt").read_text() == "done"
    assert run.get_metrics()["ok"] == 1
    node = ws.cluster(iso1).nodes()[0]
    assert not str(node.info["path"]).startswith(str(ws.path))


def test_a_job_cannot_read_another_clusters_running_job_environment(iso_ws: bai.Workspace,
                                                                     tmp_path: Path) -> None:
    ws, iso2, iso3 = iso_ws, _name("iso2"), _name("iso3")
    ws.create_cluster(iso2, backend="local", max_nodes=1, python=ws.reachable_python)
    ws.create_cluster(iso3, backend="local", max_nodes=1, python=ws.reachable_python)
    holder_src = tmp_path / "holder"
    holder_src.mkdir()
    (holder_src / "hold.py").write_text(textwrap.dedent("""
        import os, time
        print(os.getpid(), flush=True)
        while not os.path.exists("release"):
            time.sleep(0.05)
    """))
    holder = ws.experiment("iso").submit(JobSpec(source_directory=holder_src, script="hold.py",
                                                 secrets={"API_KEY": VALUE}), cluster=iso2)
    pid = next(holder.stream())
    run = _probe(ws, tmp_path, iso3, pid)
    assert run.wait_for_completion(timeout=120, raise_on_error=False)["status"] == "Completed"
    seen = json.loads(run.file_path(run.main_log()).read_text().splitlines()[-1])
    assert seen["user"] == f"batchai-{iso3}" and seen["other_environ"] is False
    holder_wd = Path(f"/proc/{pid}/cwd").resolve()
    (holder_wd / "release").write_text("")
    assert holder.wait_for_completion(timeout=60)["status"] == "Completed"


def test_an_account_that_cannot_run_the_nodes_python_is_said_not_hidden(iso_ws: bai.Workspace,
                                                                          tmp_path: Path) -> None:
    """The test venv lives under /root (0700): a named account cannot run it, "auto" falls back."""
    ws, named, auto = iso_ws, _name("isonamed"), _name("isoauto")
    if not sys.executable.startswith("/root/") and not os.path.realpath(sys.executable).startswith("/root/"):
        pytest.skip(reason="this interpreter is not under /root, so every account can run it")
    ws.create_cluster(named, backend="local", max_nodes=1, run_as="nobody")
    refused = _probe(ws, tmp_path, named)
    assert wait_until(lambda: any(n.state == "unusable" for n in ws.cluster(named).nodes()), 60)
    why = next(n.error for n in ws.cluster(named).nodes()) or ""
    assert "'nobody'" in why and "run_as='engine'" in why, why
    refused.cancel()
    ws.create_cluster(auto, backend="local", max_nodes=1)   # auto: runs, as the engine's user
    run = _probe(ws, tmp_path, auto)
    assert run.wait_for_completion(timeout=120)["status"] == "Completed"
    assert json.loads(run.file_path(run.main_log()).read_text().splitlines()[-1])["uid"] == 0
    said = ws.cluster(auto).nodes()[0].info["run_as"]
    assert said.startswith(f"the engine's user: account 'batchai-{auto}'"), said


def test_run_as_engine_keeps_jobs_as_the_engine_user_and_bad_names_are_refused(iso_ws: bai.Workspace,
                                                                                tmp_path: Path) -> None:
    ws = iso_ws
    ws.create_cluster("plain", backend="local", max_nodes=1, run_as="engine")
    run = _probe(ws, tmp_path, "plain")
    assert run.wait_for_completion(timeout=120)["status"] == "Completed"
    seen = json.loads(run.file_path(run.main_log()).read_text().splitlines()[-1])
    assert seen["uid"] == 0 and seen["secrets_json"] is True   # what docs/security.md warns about
    with pytest.raises(SpecError) as err:
        ws.create_cluster("bad", backend="local", run_as="Root Account")
    assert err.value.field == "run_as" and "engine" in str(err.value)


WRITER = textwrap.dedent("""
    import json, os
    with open("data.txt", "a") as fh:               # an existing source file, changed
        fh.write("changed by the job\\n")
    with open("pkg/new.txt", "w") as fh:            # a new file in a folder of the snapshot
        fh.write("new")
    os.remove("job.py")
    trees = os.path.join(os.getcwd(), "..", "..", "..", "trees")
    try:
        os.listdir(trees)
        reached = True
    except PermissionError:
        reached = False
    print(json.dumps({"data": open("data.txt").read(), "owner": os.stat("data.txt").st_uid,
                      "reached_trees": reached, "uid": os.geteuid()}), flush=True)
""")


def test_a_job_of_the_clusters_account_writes_its_overlay_and_never_the_tree(iso_ws: bai.Workspace,
                                                                             tmp_path: Path) -> None:
    """The default for a root engine: jobs as the cluster's account, each run a view of the
    snapshot's one tree that copies nothing, its changes its own."""
    ws, cluster = iso_ws, _name("isoview")
    ws.create_cluster(cluster, backend="local", max_nodes=1, python=ws.reachable_python)
    src = tmp_path / "writer"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "a.txt").write_text("a")
    (src / "data.txt").write_text("original\n")
    (src / "job.py").write_text(WRITER)
    exp = ws.experiment("iso")
    runs = []
    for _ in range(2):  # the second run finds the tree the first one left as it was
        run = exp.submit(JobSpec(source_directory=src, script="job.py", keep_node_files=True), cluster=cluster)
        assert run.wait_for_completion(timeout=120, raise_on_error=False)["status"] == "Completed", \
            run.file_path("stderr.txt").read_text()
        runs.append(run)
    node = Path(ws.cluster(cluster).nodes()[0].info["path"])
    made = {(node / "runs" / r.id / "view.mode").read_text() for r in runs}
    if made != {"overlay-closed"}:
        pytest.skip(reason=f"this node cannot mount overlays (views: {made})")
    for run in runs:
        seen = json.loads(run.file_path(run.main_log()).read_text().splitlines()[-1])
        assert seen["data"] == "original\nchanged by the job\n"
        assert seen["uid"] != 0 and seen["owner"] == seen["uid"] and seen["reached_trees"] is False
    (tree,) = list((node / "trees").iterdir())
    assert (tree / "data.txt").read_text() == "original\n" and (tree / "job.py").exists()
    assert not (tree / "pkg" / "new.txt").exists()
    kept = node / "runs" / runs[0].id / "wd"  # the kept folder holds what the run changed, only
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == \
        ["data.txt", "pkg/new.txt"]

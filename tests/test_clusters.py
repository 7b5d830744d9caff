"""Clusters on the local backend: defaults, scaling, resize, update, delete, bad input."""
from __future__ import annotations

from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import (
    ClusterConfig,
    ClusterError,
    ClusterNotFound,
    JobSpec,
    SpecError,
    WorkspacePaths,
)
from batchai_jupyter.cluster_config import DEFAULT_DEALLOCATION, DEFAULT_IDLE_SECONDS
from tests.support import wait_until


def test_fresh_workspace_defaults(ws: bai.Workspace) -> None:
    [local] = ws.clusters()
    assert (local.name, local.backend, local.min_nodes, local.max_nodes) == ("local", "local", 0, 2)
    assert (local.idle_seconds_before_scaledown, local.node_deallocation_option) == \
        (DEFAULT_IDLE_SECONDS, DEFAULT_DEALLOCATION) == (120, "requeue")
    [store] = ws.datastores()
    assert (store.name, store.kind, store.is_default) == ("workspacestore", "local", True)
    assert oct((ws.path / "secrets.json").stat().st_mode & 0o777) == "0o600"
    assert (ws.path / "history.db").exists() and (ws.path / "workspace.json").exists()
    paths = WorkspacePaths.of(ws.path)
    assert paths == ws.paths and paths.history_db == ws.path / "history.db"
    assert paths.secrets == ws.path / "secrets.json" and paths.meta == ws.path / "workspace.json"
    assert all(folder.is_dir() for folder in paths.folders())
    assert store.root == paths.datastore_dir("workspacestore")
    assert ws.run_files_dir("r1") == paths.run_files("r1") == ws.path / "runs" / "r1" / "files"
    assert (paths.engine_lock.name, paths.engine_info.name) == ("engine.lock", "engine.json")


def test_cluster_config_reads_and_writes_the_stored_rows(ws: bai.Workspace) -> None:
    # a row as workspaces made before ClusterConfig stored it (no deallocation option)
    old = {"name": "old", "backend": "ssh", "min_nodes": 0, "max_nodes": 2, "gpus_per_node": 4,
           "idle_seconds_before_scaledown": 60, "hosts": ["h1", "h2:2222"], "user": "azureuser"}
    config = ClusterConfig.from_dict(old)
    assert (config.backend, config.max_nodes, config.gpus_per_node) == ("ssh", 2, 4)
    assert config.node_deallocation_option == DEFAULT_DEALLOCATION
    assert config.options == {"hosts": ["h1", "h2:2222"], "user": "azureuser"} and config.hosts == ["h1", "h2:2222"]
    assert config.to_dict() == {**old, "node_deallocation_option": "requeue"}
    assert ClusterConfig.from_dict(config.to_dict()) == config
    assert ClusterConfig.from_dict({"name": "bare", "backend": "local"}).idle_seconds_before_scaledown == 120
    cluster = ws.create_cluster("cfg", max_nodes=3, idle_seconds_before_scaledown=30, python="/usr/bin/python3")
    stored = ws.history.cluster_row("cfg")
    assert stored == {"name": "cfg", "backend": "local", "min_nodes": 0, "max_nodes": 3,
                      "idle_seconds_before_scaledown": 30, "gpus_per_node": 0,
                      "node_deallocation_option": "requeue", "python": "/usr/bin/python3"}
    assert cluster.settings == ClusterConfig.from_dict(stored) and cluster.config == stored
    with pytest.raises(SpecError) as err:
        ClusterConfig("x", node_deallocation_option="later").check()
    assert err.value.field == "node_deallocation_option"


def test_from_config_finds_nearest_workspace(ws: bai.Workspace, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    deep = ws.path.parent / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.delenv("BATCHAI_WORKSPACE", raising=False)
    monkeypatch.chdir(deep)
    assert bai.Workspace.from_config().path == ws.path
    monkeypatch.setenv("BATCHAI_WORKSPACE", str(tmp_path / "other"))
    assert bai.Workspace.from_config().path == (tmp_path / "other").resolve()


def test_scale_up_on_demand_and_down_when_idle(ws: bai.Workspace, src: Path) -> None:
    cluster = ws.create_cluster("quick", backend="local", max_nodes=2, idle_seconds_before_scaledown=1)
    assert cluster.get_status().current_node_count == 0
    run = ws.experiment("s").submit(JobSpec(source_directory=src, script="train.py", node_count=2),
                                    cluster="quick")
    run.wait_for_completion()
    assert run.get_details()["nodes"] == ["node-0", "node-1"]
    assert wait_until(lambda: cluster.get_status().current_node_count == 0, 20)


def test_resize_update_and_status(ws: bai.Workspace) -> None:
    cluster = ws.create_cluster("pool", backend="local", max_nodes=3)
    cluster.resize(2)
    assert wait_until(lambda: cluster.get_status().node_state_counts["idle"] == 2, 20)
    status = cluster.get_status()
    assert status.allocation_state == "steady" and (cluster.min_nodes, cluster.max_nodes) == (2, 2)
    cluster.resize(0)
    assert wait_until(lambda: cluster.get_status().current_node_count == 0, 20)
    cluster.update(max_nodes=4, idle_seconds_before_scaledown=30)
    assert (cluster.max_nodes, cluster.idle_seconds_before_scaledown) == (4, 30)
    with pytest.raises(SpecError) as err:
        cluster.update(min_nodes=5)
    assert err.value.field == "min_nodes"


def test_delete_refuses_active_runs_unless_forced(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "s"
    src.mkdir()
    (src / "sleep.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    ws.create_cluster("tmp", backend="local", max_nodes=1)
    run = ws.experiment("d").submit(JobSpec(source_directory=src, script="sleep.py"), cluster="tmp")
    assert next(run.stream()) == "up"
    with pytest.raises(ClusterError, match="active run"):
        ws.cluster("tmp").delete()
    ws.cluster("tmp").delete(force=True)
    with pytest.raises(ClusterNotFound):
        ws.cluster("tmp")
    assert run.wait_for_completion(raise_on_error=False, timeout=60)["status"] == "Canceled"
    assert wait_until(lambda: ws.history.cluster_config("tmp") is None, 20)
    assert not (ws.path / "clusters" / "tmp" / "nodes" / "node-0").exists()


@pytest.mark.parametrize("kwargs,field", [
    ({"backend": "kubernetes"}, "backend"),
    ({"min_nodes": 3, "max_nodes": 2}, "min_nodes"),
    ({"max_nodes": -1}, "max_nodes"),
    ({"gpus_per_node": "4"}, "gpus_per_node"),
])
def test_bad_cluster_options(ws: bai.Workspace, kwargs: dict, field: str) -> None:
    with pytest.raises(SpecError) as err:
        ws.create_cluster("bad", **kwargs)
    assert err.value.field == field


def test_duplicate_and_bad_names(ws: bai.Workspace) -> None:
    with pytest.raises(ClusterError, match="already exists"):
        ws.create_cluster("local")
    assert ws.create_cluster("local", exist_ok=True).name == "local"
    with pytest.raises(SpecError) as err:
        ws.create_cluster("no spaces")
    assert err.value.field == "name"

"""The declared Compute protocol, its outcomes and registry, and the engine's steps on local clusters."""
from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import batchai_jupyter as bai
import batchai_jupyter.compute as compute_registry
from batchai_jupyter import JobSpec
from batchai_jupyter.compute import backend_class, backend_names
from batchai_jupyter.compute.base import Compute, NodeInfo, NodePool
from batchai_jupyter.compute.local import LocalCompute
from batchai_jupyter.compute.outcomes import Granted, Pending
from batchai_jupyter.compute.transport import LocalTransport, Transport
from batchai_jupyter.engine.control import ensure_engine, stop_engine
from batchai_jupyter.errors import ClusterError
from batchai_jupyter.history import RunHistory
from batchai_jupyter.snapshot import SnapshotStore
from tests.support import wait_until

pytestmark = pytest.mark.timeout(180)


class FolderPool(NodePool):
    """A backend written against the declared protocol only: nodes are folders under `root`."""

    backend = "folders"

    def __init__(self, config: dict[str, Any], workspace_path: Path, history: RunHistory):
        super().__init__(config, workspace_path, history)
        self._transport = LocalTransport()

    def _slots(self) -> list[str]:
        return [f"f{i}" for i in range(int(self.config["max_nodes"]))]

    def _provision(self, node_id: str) -> dict[str, Any]:
        return {"address": "127.0.0.1", "gpus": 0, "info": {}}

    def transport(self, node: NodeInfo) -> Transport:
        return self._transport

    def node_root(self, node: NodeInfo) -> str:
        return str(Path(self.config["root"]) / node.id)


class SharedFolderPool(FolderPool):
    shared_object_cache = True

    def objects_dir(self, node: NodeInfo) -> str:
        return str(Path(self.config["root"]) / "objects")


def _store_with(tmp_path: Path, count: int) -> tuple[SnapshotStore, list[str]]:
    store = SnapshotStore(tmp_path / "snapshots")
    return store, sorted(store.put_bytes(f"object {i}".encode()) for i in range(count))


def _pool(cls: type[FolderPool], tmp_path: Path, max_nodes: int = 2) -> FolderPool:
    tmp_path.mkdir(parents=True, exist_ok=True)
    history = RunHistory(tmp_path / "history.db")
    return cls({"name": "f", "backend": cls.backend, "max_nodes": max_nodes, "root": str(tmp_path / "nodes")},
               tmp_path, history)


def _run(run_id: str) -> dict[str, Any]:
    return {"id": run_id, "properties": {}, "spec": {}}


# -- the protocol, without an engine ------------------------------------------------------------
def test_every_hook_the_engine_calls_is_declared_on_compute() -> None:
    for hook in ("allocate", "release", "transport", "node_root", "objects_dir", "shared_dir", "python",
                 "nodes", "free_port", "ensure_objects", "launch", "kill_groups", "set_node_state",
                 "reclaim_nodes", "maintain", "delete", "close", "validate_config"):
        assert callable(getattr(Compute, hook)), hook
    assert {"allocate", "release", "transport", "node_root"} <= Compute.__abstractmethods__
    assert (Compute.queues_itself, Compute.shared_object_cache, Compute.live_properties) == (False, False, ())


def test_a_pool_answers_granted_then_pending_when_full(tmp_path: Path) -> None:
    pool = _pool(FolderPool, tmp_path)
    granted = pool.allocate(_run("a"), 2)
    assert isinstance(granted, Granted) and [n.id for n in granted.nodes] == ["f0", "f1"]
    waiting = pool.allocate(_run("b"), 1)
    assert waiting == Pending("waiting for 1 node(s) of cluster 'f'")
    pool.release("a")
    assert [(n.id, n.state, n.run_id) for n in pool.nodes()] == [("f0", "idle", None), ("f1", "idle", None)]
    pool.delete()
    assert pool.nodes() == []


def test_objects_are_listed_once_and_sent_once_per_cache(tmp_path: Path) -> None:
    store, digests = _store_with(tmp_path, 3)
    pool = _pool(FolderPool, tmp_path)
    granted = pool.allocate(_run("a"), 2)
    assert isinstance(granted, Granted)
    first, second = granted.nodes
    assert pool.ensure_objects(first, digests, store) == 3
    assert pool.ensure_objects(first, digests, store) == 0
    assert pool.ensure_objects(second, digests, store) == 3  # its own cache
    pool.forget_objects(first)
    assert pool.ensure_objects(first, digests, store) == 0  # listed again: all there

    shared = _pool(SharedFolderPool, tmp_path / "shared")
    granted = shared.allocate(_run("a"), 2)
    assert isinstance(granted, Granted)
    assert [shared.ensure_objects(n, digests, store) for n in granted.nodes] == [3, 0]


def test_local_nodes_read_the_workspace_store_and_pick_ports_here(ws: bai.Workspace) -> None:
    local = LocalCompute(ws.history.cluster_row("local") or {}, ws.path, ws.history)
    node = NodeInfo(id="node-0", address="127.0.0.1", state="idle")
    assert local.ensure_objects(node, ["ab" * 32], ws.store) == 0
    assert 0 < local.free_port(node) < 65536


def test_registry_lists_backends_and_merges_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint
    points = [EntryPoint("folders", f"{__name__}:FolderPool", compute_registry.ENTRY_POINT_GROUP),
              EntryPoint("local", "elsewhere:Other", compute_registry.ENTRY_POINT_GROUP),
              EntryPoint("broken", "no_colon", compute_registry.ENTRY_POINT_GROUP)]
    from batchai_jupyter import plugins
    monkeypatch.setattr(plugins, "entry_points", lambda group: points if
                        group == compute_registry.ENTRY_POINT_GROUP else [])
    assert backend_names() == ("local", "ssh", "slurm", "folders")
    assert backend_class("folders") is FolderPool
    assert backend_class("local") is LocalCompute  # a built-in name is never taken over
    with pytest.raises(ClusterError, match=r"unknown backend 'k8s' \(valid: local, ssh, slurm, folders\)"):
        backend_class("k8s")


# -- the engine's steps, end to end on local clusters ------------------------------------------
def _script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(body))
    return folder


def test_a_run_that_cannot_be_reconciled_fails_alone(ws: bai.Workspace, tmp_path: Path) -> None:
    """A run row the engine cannot rebuild (its files folder name is too long) fails with the
    reason; the run the restarted engine picks up, and a new one, still complete."""
    src = _script(tmp_path / "src", "slow.py", """
        import time
        print("start", flush=True)
        time.sleep(4)
        print("end", flush=True)
    """)
    exp = ws.experiment("rec")
    picked_up = exp.submit(JobSpec(source_directory=src, script="slow.py"))
    assert wait_until(lambda: picked_up.get_details()["status"] == "Running", 60)
    stop_engine(ws.path)
    bad = "rec_" + "x" * 300  # runs/<id>/files cannot be made: File name too long
    ws.history.insert_run(bad, "rec", "local", {"script": "slow.py", "node_count": 1}, None, {}, 1,
                          status="Running")
    ensure_engine(ws.path)
    fresh = exp.submit(JobSpec(source_directory=src, script="slow.py"))
    assert picked_up.wait_for_completion(show_output=False, timeout=60)["status"] == "Completed"
    assert fresh.wait_for_completion(show_output=False, timeout=60)["status"] == "Completed"
    row = ws.history.run_row(bad)
    assert row is not None and row["status"] == "Failed"
    assert "cannot pick the run up after an engine restart" in row["error"]["message"]
    assert "File name too long" in row["error"]["message"]


def test_deleting_a_cluster_does_not_hold_up_other_runs(ws: bai.Workspace, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The deleted cluster's run takes its kill grace (15 s) to stop; meanwhile another
    cluster's run is scheduled and completes, and the cluster row goes once its run is final."""
    monkeypatch.setenv("BATCHAI_KILL_GRACE", "15")
    stubborn = _script(tmp_path / "stubborn", "stay.py", """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("up", flush=True)
        time.sleep(120)
    """)
    quick = _script(tmp_path / "quick", "hello.py", "print('hello')\n")
    ws.create_cluster("doomed", backend="local", max_nodes=1)
    held = ws.experiment("del").submit(JobSpec(source_directory=stubborn, script="stay.py"), cluster="doomed")
    assert next(held.stream()) == "up"
    ws.cluster("doomed").delete(force=True)
    started = time.time()
    other = ws.experiment("del").submit(JobSpec(source_directory=quick, script="hello.py"))
    assert other.wait_for_completion(show_output=False, timeout=60)["status"] == "Completed"
    assert time.time() - started < 12, "the other run waited for the deletion"
    assert held.get_details()["status"] in ("CancelRequested", "Running", "Finalizing")
    assert ws.history.cluster_row("doomed") is not None  # still waiting for its run to end
    assert held.wait_for_completion(raise_on_error=False, show_output=False, timeout=60)["status"] == "Canceled"
    assert wait_until(lambda: ws.history.cluster_row("doomed") is None, 20)
    assert not (ws.path / "clusters" / "doomed" / "nodes" / "node-0").exists()

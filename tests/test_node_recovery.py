"""A lost node comes back: nothing wedges a cluster after its nodes were lost."""
from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.compute import base
from batchai_jupyter.compute.base import NodeInfo, NodePool
from batchai_jupyter.compute.outcomes import Granted, Pending
from batchai_jupyter.compute.transport import LocalTransport, Transport
from batchai_jupyter.node.tree import unmount_below
from tests.compute.ssh_env import SSHHosts, make_ssh_cluster, running_hosts
from tests.support import process_gone, wait_until


def _gated_job(folder: Path, gate: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.py").write_text(textwrap.dedent(f"""
        import os, time
        print("started", flush=True)
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.02)
        print("done", flush=True)
    """))
    return folder



def _kill_agent(ws: bai.Workspace, run: bai.Run, attempt: int) -> tuple[str, list[int]]:
    """Wait until the run's attempt has started its job, SIGKILL its agent: its node, the job's pids."""
    key = run.id if attempt == 0 else f"{run.id}.{attempt}"
    found: list[Path] = []

    def started() -> bool:
        found[:] = list(Path(ws.path, "clusters", "local", "nodes").glob(f"*/runs/{key}/pids.json"))
        return bool(found) and (found[0].parent / "agent.started").exists()

    assert wait_until(started, 60)
    run_dir = found[0].parent
    job_pids = [int(p) for p in json.loads(run_dir.joinpath("pids.json").read_text()).values()]
    agent = int(run_dir.joinpath("agent.started").read_text())
    os.kill(agent, signal.SIGKILL)
    assert wait_until(lambda: process_gone(agent), 10)
    return run_dir.parent.parent.name, job_pids


def test_agent_killed_twice_then_a_third_run_completes_on_the_default_cluster(
        ws: bai.Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "2")
    monkeypatch.setenv("BATCHAI_NODE_RETRY_SECONDS", "2")
    gate = tmp_path / "gate"
    src = _gated_job(tmp_path / "src", gate)
    first = ws.experiment("lost").submit(JobSpec(source_directory=src, script="job.py"))
    lost_a, pids_a = _kill_agent(ws, first, 0)          # requeued onto the other node
    assert wait_until(lambda: first.get_details()["properties"].get("attempt") == 1, 60)
    lost_b, pids_b = _kill_agent(ws, first, 1)          # both nodes of the cluster lost once
    assert lost_a != lost_b
    assert wait_until(lambda: first.get_details()["properties"].get("attempt") == 2, 60)
    gate.write_text("go")
    assert first.wait_for_completion(timeout=90)["status"] == "Completed"
    third = ws.experiment("lost").submit(JobSpec(source_directory=src, script="job.py"))
    assert third.wait_for_completion(timeout=90)["status"] == "Completed"
    for pid in pids_a + pids_b:  # nothing of the lost attempts lives on
        assert wait_until(functools.partial(process_gone, pid), 10)
    assert wait_until(lambda: all(n.state == "idle" for n in ws.cluster("local").nodes()), 30)
    for node in (lost_a, lost_b):  # the reclaimed folders lost the lost attempts' leftovers
        leftovers = {p.name for p in ws.paths.node_dir("local", node).joinpath("runs").iterdir()}
        assert not leftovers & {first.id, f"{first.id}.1"}


def test_a_deleted_node_folder_is_made_anew(ws: bai.Workspace, src: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A node marked unusable whose folder was deleted is reclaimed by the pool's upkeep."""
    monkeypatch.setenv("BATCHAI_NODE_RETRY_SECONDS", "1")
    ws.create_cluster("one", backend="local", max_nodes=1)
    run = ws.experiment("d").submit(JobSpec(source_directory=src, script="train.py", arguments=["1"]),
                                    cluster="one")
    assert run.wait_for_completion()["status"] == "Completed"
    [node] = ws.cluster("one").nodes()
    folder = ws.paths.node_dir("one", node.id)
    shutil.rmtree(folder)
    ws.history.put_node("one", node.id, "unusable", error=f"node {node.id} lost: folder deleted")
    again = ws.experiment("d").submit(JobSpec(source_directory=src, script="train.py", arguments=["1"]),
                                      cluster="one")
    assert again.wait_for_completion(timeout=90)["status"] == "Completed"
    assert folder.joinpath("runs").is_dir()


class _Pool(NodePool):
    """A pool of three named slots; the slots in `broken` fail to set up until repaired."""

    backend = "test-pool"

    def __init__(self, history: Any, path: Path, broken: set[str]):
        super().__init__({"name": "pool", "max_nodes": 2, "min_nodes": 0}, path, history)
        self.broken = broken
        self.recovered: list[tuple[str, float]] = []

    def _slots(self) -> list[str]:
        return ["a", "b", "c"]

    def _provision(self, node_id: str) -> dict[str, Any]:
        if node_id in self.broken:
            raise OSError(f"{node_id} does not answer")
        return {"address": node_id, "gpus": 0, "info": {}}

    def _recover(self, node: NodeInfo) -> None:
        self.recovered.append((node.id, time.time()))
        try:
            got = self._provision(node.id)
        except OSError:
            return
        self.history.put_node(self.name, node.id, "idle", got["address"])

    def transport(self, node: NodeInfo) -> Transport:
        return LocalTransport()

    def node_root(self, node: NodeInfo) -> str:
        return "/nonexistent"


def test_an_unusable_node_holds_no_slot_another_host_can_fill(ws: bai.Workspace) -> None:
    pool = _Pool(ws.history, ws.path, broken={"a"})
    run: Any = {"id": "r1"}
    assert isinstance(pool.allocate(run, 2), Pending)   # a fails and becomes unusable
    assert [n.state for n in pool.nodes()] == ["unusable"]
    got = pool.allocate(run, 2)                          # b and c fill the two slots
    assert isinstance(got, Granted) and sorted(n.id for n in got.nodes) == ["b", "c"]


def test_an_unusable_node_is_tried_again_with_backoff(ws: bai.Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "RETRY_FIRST_SECONDS", 5.0)
    pool = _Pool(ws.history, ws.path, broken={"a"})
    run: Any = {"id": "r1"}
    assert isinstance(pool.allocate(run, 1), Pending)
    since = pool.nodes()[0].since
    clock = [since]
    monkeypatch.setattr(base.time, "time", lambda: clock[0])
    tries = []
    for offset in (1, 5, 6, 14, 16, 36, 100, 400, 700, 1000):
        clock[0] = since + offset
        before = len(pool.recovered)
        pool.maintain()
        if len(pool.recovered) > before:
            tries.append(offset)
    assert tries == [5, 16, 36, 100, 400, 700, 1000]  # 5 s, then doubling up to 5 min
    pool.broken.clear()
    clock[0] = since + 1400
    pool.maintain()
    assert [n.state for n in pool.nodes()] == ["idle"]


@pytest.fixture(scope="module")
def one_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHHosts]:
    """One real ssh host of its own (namespace and subnet apart from tests/compute's hosts)."""
    yield from running_hosts(tmp_path_factory.mktemp("reprobe"), count=1)


def test_an_ssh_host_that_failed_its_probe_is_probed_again_and_runs(
        ws: bai.Workspace, one_host: SSHHosts, src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_SSH_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("BATCHAI_NODE_RETRY_SECONDS", "1")
    host = one_host.hosts[0]
    one_host.stop_sshd(host)
    try:
        make_ssh_cluster(ws, one_host, name="reprobe", count=1)
        run = ws.experiment("ssh").submit(JobSpec(source_directory=src, script="train.py", arguments=["1"]),
                                          cluster="reprobe")
        assert wait_until(lambda: [n.state for n in ws.cluster("reprobe").nodes()] == ["unusable"], 60)
        assert run.status == "Queued"
    finally:
        one_host.start_sshd(host)
    assert run.wait_for_completion(timeout=120)["status"] == "Completed"
    [node] = ws.cluster("reprobe").nodes()
    assert node.state in ("idle", "running") and node.error is None


def test_a_node_folder_deleted_mid_run_is_reclaimed_and_runs_again(
        ws: bai.Workspace, src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder of the node a run is on is deleted for real while the job runs: the node is
    found lost (its heartbeat is gone), what ran there is stopped, the folder is made anew and
    the run goes on in a new attempt there; a later run completes too."""
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "2")
    monkeypatch.setenv("BATCHAI_NODE_RETRY_SECONDS", "1")
    ws.create_cluster("one", backend="local", max_nodes=1)
    gate = tmp_path / "gate"
    gated = _gated_job(tmp_path / "gated", gate)
    run = ws.experiment("gone").submit(JobSpec(source_directory=gated, script="job.py"), cluster="one")
    pids = Path()

    def started() -> bool:
        nonlocal pids
        pids = next(ws.paths.cluster_dir("one").glob(f"nodes/*/runs/{run.id}/pids.json"), Path())
        return pids.name == "pids.json" and (pids.parent / "agent.started").exists()

    assert wait_until(started, 60)
    # the engine has seen the job's first line, so the agent's heartbeat too (the same pass)
    log = run.files_dir / run.main_log()
    assert wait_until(lambda: log.is_file() and log.read_text() == "started\n", 60)
    node_dir = pids.parents[2]
    job_pids = [int(p) for p in json.loads(pids.read_text()).values()]
    agent = int(pids.parent.joinpath("agent.started").read_text())
    unmount_below(str(node_dir))  # as `umount -R -l` then `rm -rf` would (wd is an overlay as root)
    shutil.rmtree(node_dir)
    assert wait_until(lambda: run.get_details()["properties"].get("attempt") == 1, 90), run.get_details()
    lost = [e["message"] for e in run.get_details()["events"] if e["status"] == "Queued"][-1]
    assert lost.startswith(f"requeued: node {node_dir.name} lost"), lost
    for pid in [agent, *job_pids]:  # nothing of the lost attempt lives on
        assert wait_until(functools.partial(process_gone, pid), 30), pid
    gate.write_text("go")
    details = run.wait_for_completion(timeout=90)
    assert details["status"] == "Completed"
    assert run.file_path(run.main_log()).read_text() == "started\ndone\n"
    later = ws.experiment("gone").submit(JobSpec(source_directory=src, script="train.py", arguments=["1"]),
                                         cluster="one")
    assert later.wait_for_completion(timeout=90)["status"] == "Completed"
    assert node_dir.joinpath("runs").is_dir()
    [node] = ws.cluster("one").nodes()
    assert wait_until(lambda: ws.cluster("one").nodes()[0].state == "idle", 30)
    assert node.error is None

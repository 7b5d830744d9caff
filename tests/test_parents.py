"""Parents that follow their children (JobSpec(wait_for_children=True)) and run.submit_children."""
from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.engine.control import engine_info, forget
from tests.support import process_gone, wait_until


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "jobs"
    path.mkdir()
    (path / "child.py").write_text(textwrap.dedent("""
        import sys, time
        time.sleep(float(sys.argv[1]))
        sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    """))
    return path


def _child(folder: Path, seconds: float = 0, code: int = 0) -> bai.JobSpec:
    return bai.JobSpec(source_directory=folder, script="child.py", arguments=[str(seconds), str(code)])


def test_parent_without_command_is_running_until_its_children_complete(ws, folder) -> None:
    ws.create_cluster("cpu", max_nodes=3)
    parent = ws.experiment("batch").submit(bai.JobSpec(wait_for_children=True), cluster="cpu")
    assert parent.status == "Running"
    children = parent.submit_children([_child(folder, 0), _child(folder, 0), _child(folder, 4)])
    assert [c.parent for c in children] == [parent] * 3
    assert [c.id for c in parent.get_children()] == [c.id for c in children]
    assert wait_until(lambda: children[0].status == "Completed" and children[1].status == "Completed", 60)
    assert children[2].status in ("Queued", "Preparing", "Running")
    assert parent.status == "Running"
    assert wait_until(lambda: parent.get_details()["properties"].get("children", {}).get("active") == 1, 10)
    details = parent.wait_for_completion(timeout=60)
    assert details["status"] == "Completed" and children[2].status == "Completed"
    assert details["properties"]["children"] == {"active": 0, "ended": 3}
    assert parent.get_details()["nodes"] == []  # it never took a node


def test_parent_fails_when_a_child_fails(ws, folder) -> None:
    parent = ws.experiment("batch").submit(bai.JobSpec(wait_for_children=True))
    bad, good = parent.submit_children([_child(folder, 0, 3), _child(folder, 1)])
    with pytest.raises(bai.RunFailed) as err:
        parent.wait_for_completion(timeout=60)
    assert bad.id in str(err.value) and "1 of 2 child runs failed" in str(err.value)
    assert good.status == "Completed"
    assert parent.get_details()["error"]["failed_children"] == [bad.id]


def test_parent_with_a_command_waits_after_its_own_process(ws, folder) -> None:
    parent = ws.experiment("batch").submit(
        bai.JobSpec(source_directory=folder, command="echo parent done", wait_for_children=True))
    child = parent.submit_child(_child(folder, 4))
    assert wait_until(lambda: (parent.get_details()["properties"].get("own_outcome") or {}).get("status")
                      == "Completed", 60)
    assert parent.status == "Running" and child.status in ("Queued", "Preparing", "Running")
    assert parent.wait_for_completion(timeout=60)["status"] == "Completed"
    assert child.status == "Completed"
    assert "parent done" in (parent.files_dir / "stdout.txt").read_text()


def test_canceling_a_waiting_parent_cancels_its_children(ws, folder) -> None:
    parent = ws.experiment("batch").submit(bai.JobSpec(wait_for_children=True))
    children = parent.submit_children([_child(folder, 120), _child(folder, 120), _child(folder, 120)])
    assert wait_until(lambda: children[0].status == "Running", 60)
    parent.cancel()
    assert wait_until(lambda: parent.status == "Canceled", 60)
    assert [c.status for c in children] == ["Canceled"] * 3


def test_parent_survives_an_engine_sigkill(ws, folder) -> None:
    parent = ws.experiment("batch").submit(
        bai.JobSpec(source_directory=folder, command="true", wait_for_children=True))
    child = parent.submit_child(_child(folder, 5))
    assert wait_until(lambda: "own_outcome" in parent.get_details()["properties"], 60)
    pid = int(engine_info(ws.path)["pid"])
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: process_gone(pid), 10)
    forget(ws.path)
    assert parent.wait_for_completion(timeout=90)["status"] == "Completed"  # reading it restarts the engine
    assert child.status == "Completed"


def test_submit_children_checks_every_spec_before_storing_any(ws, folder) -> None:
    parent = ws.experiment("batch").submit(bai.JobSpec(wait_for_children=True))
    with pytest.raises(bai.SpecError) as err:
        parent.submit_children([_child(folder), bai.JobSpec(source_directory=folder, script="nope.py")])
    assert err.value.field == "script"
    with pytest.raises(bai.SpecError) as err:
        parent.submit_children([])
    assert err.value.field == "specs"
    assert parent.get_children() == []
    with pytest.raises(bai.SpecError) as err:
        bai.JobSpec(wait_for_children="yes").validate()
    assert err.value.field == "wait_for_children"
    with pytest.raises(bai.SpecError) as err:
        bai.JobSpec().validate()  # no command and no parent role: nothing to run
    assert err.value.field == "command"
    parent.cancel()


def test_submit_children_shares_one_snapshot_per_folder(ws, folder) -> None:
    parent = ws.experiment("batch").submit(bai.JobSpec(wait_for_children=True))
    children = parent.submit_children([_child(folder, 0) for _ in range(20)])
    snapshots = {c.row()["snapshot"] for c in children}
    assert len(snapshots) == 1 and None not in snapshots
    assert sorted(c.number for c in children) == list(range(2, 22))
    assert parent.wait_for_completion(timeout=240)["status"] == "Completed"


def test_fan_out_grows_a_pool_from_zero_and_status_shows_the_scaling(ws, folder) -> None:
    cluster = ws.create_cluster("burst", min_nodes=0, max_nodes=2, idle_seconds_before_scaledown=1)
    before = cluster.get_status()
    assert before.current_node_count == 0 and before.last_scale_up is None and before.last_scale_down is None
    parent = ws.experiment("batch").submit(bai.JobSpec(wait_for_children=True), cluster="burst")
    parent.submit_children([_child(folder, 2) for _ in range(4)])
    assert wait_until(lambda: cluster.get_status().node_state_counts["running"] == 2, 60)
    grown = cluster.get_status()
    assert grown.current_node_count == 2 and grown.last_scale_up is not None
    assert grown.last_scale_up.ok and grown.last_scale_up.duration_seconds >= 0
    assert grown.last_scale_up.node in {n.id for n in cluster.nodes()}
    assert parent.wait_for_completion(timeout=120)["status"] == "Completed"
    assert wait_until(lambda: cluster.get_status().current_node_count == 0, 60)  # idle nodes leave
    shrunk = cluster.get_status()
    assert shrunk.last_scale_down is not None and shrunk.last_scale_down.ended >= grown.last_scale_up.ended


def test_canceling_a_parent_while_its_command_runs_cancels_its_children(ws, folder) -> None:
    ws.create_cluster("cpu", max_nodes=3)
    parent = ws.experiment("batch").submit(
        bai.JobSpec(source_directory=folder, script="child.py", arguments=["120"], wait_for_children=True),
        cluster="cpu")
    child = parent.submit_child(_child(folder, 120))
    assert wait_until(lambda: parent.status == "Running" and child.status == "Running", 60)
    parent.cancel()
    assert wait_until(lambda: parent.status == "Canceled", 60)
    assert wait_until(lambda: child.status == "Canceled", 60)

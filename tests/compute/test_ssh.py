"""The ssh backend against real sshd hosts in network namespaces: keys, bootstrap, faults, DDP."""
from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.errors import SpecError
from tests.compute.ssh_env import SSHHosts, make_ssh_cluster
from tests.support import wait_until

pytestmark = pytest.mark.timeout(240)




def _fingerprint(pub: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[1]


def _unusable_error(ws: bai.Workspace, cluster: str, timeout: float = 40) -> str:
    def bad() -> bool:
        return any(n.state == "unusable" for n in ws.cluster(cluster).nodes())
    assert wait_until(bad, timeout), ws.cluster(cluster).nodes()
    return next(n.error for n in ws.cluster(cluster).nodes() if n.state == "unusable") or ""


def _submit_probe(ws: bai.Workspace, cluster: str, tmp_path: Path) -> bai.Run:
    (tmp_path / "p").mkdir(exist_ok=True)
    (tmp_path / "p" / "hello.py").write_text("print('hello')\n")
    return ws.experiment("ssh").submit(JobSpec(source_directory=tmp_path / "p", script="hello.py"),
                                       cluster=cluster)


# -- bad input ----------------------------------------------------------------------------------
def test_bad_cluster_options_name_the_field(ws: bai.Workspace, ssh_hosts: SSHHosts, tmp_path: Path) -> None:
    good = {"user": "root", "key_file": ssh_hosts.key_file, "known_hosts": ssh_hosts.known_hosts}
    cases = [({"hosts": []}, "hosts"), ({"hosts": ["bad host!"]}, "hosts"),
             ({"hosts": [f"{ssh_hosts.subnet}.2:99999"]}, "hosts"), ({"hosts": ["a", "a:22"]}, "hosts"),
             ({"hosts": ["a"], "key_file": str(tmp_path / "nope")}, "key_file"),
             ({"hosts": ["a"], "known_hosts": str(tmp_path / "nope")}, "known_hosts"),
             ({"hosts": ["a"], "max_nodes": 2}, "max_nodes"),
             ({"hosts": ["a"], "mpi_mca": ["x"]}, "mpi_mca")]
    for options, field in cases:
        with pytest.raises(SpecError) as err:
            ws.create_cluster("bad", backend="ssh", **{**good, **options})
        assert err.value.field == field, (options, err.value)
    assert [c.name for c in ws.clusters()] == ["local"]


def test_unknown_host_key_is_refused_naming_host_and_fingerprint(ws: bai.Workspace, ssh_hosts: SSHHosts,
                                                                 tmp_path: Path) -> None:
    host = ssh_hosts.hosts[1]
    known = tmp_path / "known_hosts"
    known.write_text(ssh_hosts.hosts[0].host_key_line + "\n")  # host 2's key is missing
    make_ssh_cluster(ws, ssh_hosts, name="unknown", count=1, first=1, known_hosts=str(known))
    run = _submit_probe(ws, "unknown", tmp_path)
    error = _unusable_error(ws, "unknown")
    assert host.address in error and "unknown host key" in error
    assert _fingerprint(host.folder / "host_ed25519.pub") in error
    details = run.wait_for_completion(raise_on_error=False, timeout=60)  # its only host refused
    assert details["status"] == "Failed" and "unknown host key" in details["error"]["message"]
    assert "Preparing" not in [e["status"] for e in details["events"]]  # never ran on an unchecked host
    assert known.read_text() == ssh_hosts.hosts[0].host_key_line + "\n"  # nothing was added
    run.cancel()


def test_changed_host_key_is_refused(ws: bai.Workspace, ssh_hosts: SSHHosts, tmp_path: Path) -> None:
    host = ssh_hosts.hosts[1]
    known = tmp_path / "known_hosts"
    other = ssh_hosts.hosts[0].host_key_line.split(" ", 1)[1]
    known.write_text(f"{host.address} {other}\n")  # another host's key under this address
    make_ssh_cluster(ws, ssh_hosts, name="changed", count=1, first=1, known_hosts=str(known))
    run = _submit_probe(ws, "changed", tmp_path)
    error = _unusable_error(ws, "changed")
    assert host.address in error and "host key changed" in error
    assert _fingerprint(host.folder / "host_ed25519.pub") in error
    run.cancel()


def test_wrong_key_unreachable_host_and_missing_package_make_nodes_unusable(
        ws: bai.Workspace, ssh_hosts: SSHHosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_SSH_CONNECT_TIMEOUT", "2")
    wrong = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    make_ssh_cluster(ws, ssh_hosts, name="wrongkey", count=1, key_file=str(wrong))
    make_ssh_cluster(ws, ssh_hosts, name="nopkg", count=1, python="/usr/bin/python3")
    known = tmp_path / "kh"
    gone = f"{ssh_hosts.subnet}.99"  # no host there
    known.write_text(f"{gone} " + ssh_hosts.hosts[0].host_key_line.split(" ", 1)[1] + "\n")
    ws.create_cluster("gone", backend="ssh", hosts=[gone], user="root",
                      key_file=ssh_hosts.key_file, known_hosts=str(known))
    runs = [_submit_probe(ws, name, tmp_path) for name in ("wrongkey", "nopkg", "gone")]
    wrong_error = _unusable_error(ws, "wrongkey")
    assert ssh_hosts.hosts[0].address in wrong_error and "authentication failed" in wrong_error
    pkg_error = _unusable_error(ws, "nopkg")
    assert ssh_hosts.hosts[0].address in pkg_error and "batchai_jupyter" in pkg_error
    details = runs[0].wait_for_completion(raise_on_error=False, timeout=60)  # a key refused for good
    assert details["status"] == "Failed" and "authentication failed" in details["error"]["message"]
    gone_error = _unusable_error(ws, "gone")
    assert gone in gone_error and "unreachable" in gone_error
    assert "unusable" in str(ws.cluster("gone").get_status().node_state_counts) or \
        ws.cluster("gone").get_status().node_state_counts["unusable"] == 1
    for run in runs:
        run.cancel()


# -- bootstrap and transfers ------------------------------------------------------------------------
def test_snapshot_objects_are_sent_once_per_node(ws: bai.Workspace, ssh_hosts: SSHHosts, src: Path) -> None:
    make_ssh_cluster(ws, ssh_hosts, name="pool", count=1)
    spec = JobSpec(source_directory=src, script="train.py", arguments=["1"])
    first = ws.experiment("ssh").submit(spec, cluster="pool")
    assert first.wait_for_completion(show_output=False)["status"] == "Completed"
    node = ws.cluster("pool").nodes()[0]
    objects = Path(node.info["root"]) / "objects"
    before = {p: p.stat().st_mtime_ns for p in objects.rglob("*") if p.is_file()}
    assert before
    second = ws.experiment("ssh").submit(spec, cluster="pool")
    assert second.wait_for_completion(show_output=False)["status"] == "Completed"
    after = {p: p.stat().st_mtime_ns for p in objects.rglob("*") if p.is_file()}
    assert after == before  # nothing was sent again
    assert node.info["hostname"] == "node1" and node.address == ssh_hosts.hosts[0].address


# -- distributed training across hosts ------------------------------------------------------------------
DDP = """
    import os, torch, torch.distributed as dist
    dist.init_process_group("gloo")
    t = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(t)
    print("rank", dist.get_rank(), "of", dist.get_world_size(), "sum", t.item(),
          "host", os.uname().nodename, flush=True)
    dist.destroy_process_group()
"""


def test_two_node_ddp_allreduce(ws: bai.Workspace, ssh_hosts: SSHHosts, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    make_ssh_cluster(ws, ssh_hosts, name="ddp", count=2)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "ddp.py").write_text(textwrap.dedent(DDP))
    spec = JobSpec(source_directory=tmp_path / "d", script="ddp.py", node_count=2, distribution="pytorch",
                   environment_variables={"GLOO_SOCKET_IFNAME": "eth0"})
    run = ws.experiment("ssh").submit(spec, cluster="ddp")
    assert run.wait_for_completion(show_output=False, raise_on_error=False)["status"] == "Completed"
    lines = [list(run.stream(f"stdout-{n}-0.txt", follow=False))[-1] for n in (0, 1)]
    assert lines == ["rank 0 of 2 sum 3.0 host node1", "rank 1 of 2 sum 3.0 host node2"]


# -- faults -------------------------------------------------------------------------------------------
LOOP = """
    import os, time
    print("up", os.environ["RANK"], flush=True)
    for i in range(600):
        time.sleep(0.1)
"""


def _start_loop(ws: bai.Workspace, ssh_hosts: SSHHosts, tmp_path: Path, name: str, option: str,
                hosts: int = 2) -> bai.Run:
    make_ssh_cluster(ws, ssh_hosts, name=name, count=hosts, node_deallocation_option=option)
    (tmp_path / "l").mkdir(exist_ok=True)
    (tmp_path / "l" / "fault_loop.py").write_text(textwrap.dedent(LOOP))
    run = ws.experiment("faults").submit(JobSpec(source_directory=tmp_path / "l", script="fault_loop.py",
                                                 node_count=2, distribution="pytorch"), cluster=name)
    assert wait_until(lambda: list(run.stream("stdout-1-0.txt", follow=False)) == ["up 1"], 60)
    return run


def _other_run_completes(ws: bai.Workspace, src: Path) -> None:
    other = ws.experiment("other").submit(JobSpec(source_directory=src, script="train.py", arguments=["1"]))
    assert other.wait_for_completion(show_output=False)["status"] == "Completed"


def _no_leftovers(ssh_hosts: SSHHosts, *indices: int) -> bool:
    return all(not ssh_hosts.job_pids(ssh_hosts.hosts[i]) for i in indices)


@pytest.fixture
def fast_loss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "3")
    monkeypatch.setenv("BATCHAI_SSH_IO_TIMEOUT", "2")
    monkeypatch.setenv("BATCHAI_SSH_CONNECT_TIMEOUT", "2")


def test_killed_agent_fails_the_run_and_leaves_nothing(ws: bai.Workspace, ssh_hosts: SSHHosts,
                                                       tmp_path: Path, src: Path, fast_loss: None) -> None:
    run = _start_loop(ws, ssh_hosts, tmp_path, "fa", "terminate")
    host = ssh_hosts.hosts[1]
    agents = [p for p in ssh_hosts.job_pids(host)
              if "batchai_jupyter.node.agent" in Path(f"/proc/{p}/cmdline").read_text().replace("\0", " ")]
    assert len(agents) == 1
    os.kill(agents[0], 9)
    _other_run_completes(ws, src)
    assert run.wait_for_completion(show_output=False, raise_on_error=False, timeout=60)["status"] == "Failed"
    error = ws.history.run_row(run.id)["error"]["message"]
    assert f"{host.address} lost" in error and "heartbeat" in error
    assert wait_until(lambda: _no_leftovers(ssh_hosts, 0, 1), 30), \
        [ssh_hosts.job_pids(h) for h in ssh_hosts.hosts]


def test_killed_sshd_fails_the_run_then_the_node_is_cleaned(ws: bai.Workspace, ssh_hosts: SSHHosts,
                                                            tmp_path: Path, src: Path, fast_loss: None) -> None:
    run = _start_loop(ws, ssh_hosts, tmp_path, "fs", "terminate")
    host = ssh_hosts.hosts[1]
    ssh_hosts.stop_sshd(host)
    for pid in ssh_hosts.pids(host):  # the open sessions die with sshd too
        if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
            os.kill(pid, 9)
    try:
        _other_run_completes(ws, src)  # the engine does not wait for the dead host
        assert run.wait_for_completion(show_output=False, raise_on_error=False, timeout=60)["status"] == "Failed"
        error = ws.history.run_row(run.id)["error"]["message"]
        assert f"{host.address} lost: unreachable" in error
        assert ws.cluster("fs").get_status().node_state_counts["unusable"] == 1
    finally:
        ssh_hosts.start_sshd(host)
    # once the host answers again its leftovers are stopped and the node can be used again
    assert wait_until(lambda: _no_leftovers(ssh_hosts, 0, 1), 40), \
        [ssh_hosts.job_pids(h) for h in ssh_hosts.hosts]


def test_cut_link_requeues_the_run_on_other_nodes(ws: bai.Workspace, ssh_hosts: SSHHosts,
                                                  tmp_path: Path, src: Path, fast_loss: None) -> None:
    run = _start_loop(ws, ssh_hosts, tmp_path, "fl", "requeue", hosts=3)
    row = ws.history.run_row(run.id)
    cut = next(h for h in ssh_hosts.hosts if h.address == row["nodes"][1]["id"])
    ssh_hosts.set_link(cut, up=False)
    try:
        _other_run_completes(ws, src)
        assert wait_until(lambda: ws.history.run_row(run.id)["properties"].get("attempt") == 1, 60)
        why = [e["message"] for e in ws.history.events(run.id) if e["status"] == "Queued"][-1]
        assert f"requeued: node {cut.address} lost: unreachable" in why
        # the second attempt runs on the two nodes that answer
        assert wait_until(lambda: ws.history.run_row(run.id)["status"] == "Running", 60)
        again = {n["id"] for n in ws.history.run_row(run.id)["nodes"]}
        assert cut.address not in again and len(again) == 2
    finally:
        ssh_hosts.set_link(cut, up=True)
    run.cancel()
    assert run.wait_for_completion(show_output=False, raise_on_error=False, timeout=60)["status"] == "Canceled"
    assert wait_until(lambda: _no_leftovers(ssh_hosts, 0, 1, 2), 40), \
        [ssh_hosts.job_pids(h) for h in ssh_hosts.hosts]


def test_mpi_without_mpirun_on_the_node_fails_naming_it(ws: bai.Workspace, ssh_hosts: SSHHosts,
                                                        tmp_path: Path) -> None:
    make_ssh_cluster(ws, ssh_hosts, name="nompi", count=2)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "noop.py").write_text("print('never')\n")
    spec = JobSpec(source_directory=tmp_path / "m", script="noop.py", node_count=2, distribution="mpi",
                   environment_variables={"PATH": str(tmp_path / "m")})  # a node without OpenMPI
    run = ws.experiment("ssh").submit(spec, cluster="nompi")
    assert run.wait_for_completion(show_output=False, raise_on_error=False)["status"] == "Failed"
    message = ws.history.run_row(run.id)["error"]["message"]
    assert f"mpirun not found on node {ssh_hosts.hosts[0].address}" in message
    with pytest.raises(bai.RunFailed) as err:
        run.wait_for_completion(show_output=False)
    assert "mpirun not found" in str(err.value)


def test_a_host_that_hangs_while_being_set_up_does_not_hold_up_other_runs(
        ws: bai.Workspace, ssh_hosts: SSHHosts, src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_SSH_CONNECT_TIMEOUT", "15")
    host = ssh_hosts.hosts[2]
    make_ssh_cluster(ws, ssh_hosts, name="slow", count=1, first=2)
    ssh_hosts.set_link(host, up=False)  # connecting now waits for the timeout
    try:
        stuck = _submit_probe(ws, "slow", src.parent)
        assert wait_until(lambda: [n.state for n in ws.cluster("slow").nodes()] == ["preparing"], 20)
        other = ws.experiment("other").submit(JobSpec(source_directory=src, script="train.py",
                                                      arguments=["1"]))
        assert other.wait_for_completion(show_output=False)["status"] == "Completed"
        assert [n.state for n in ws.cluster("slow").nodes()] == ["preparing"]  # still connecting
    finally:
        ssh_hosts.set_link(host, up=True)
    stuck.cancel()

"""An engine restart while an ssh host of an active run is down: that run ends alone with the
reason, every other run goes on. Real sshd hosts in network namespaces (ssh_env.py), a real
engine killed with SIGKILL and started again by the next client call."""
from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.engine.control import engine_info, forget, is_running
from tests.compute.ssh_env import SSHHosts, make_ssh_cluster
from tests.support import process_gone, wait_until

pytestmark = pytest.mark.timeout(240)

LOOP = """
    import time
    print("up", flush=True)
    for i in range(600):
        time.sleep(0.1)
"""


def _kill_sshd_and_sessions(ssh_hosts: SSHHosts, index: int) -> None:
    """The host stops answering: its sshd and the sessions already open die."""
    host = ssh_hosts.hosts[index]
    ssh_hosts.stop_sshd(host)
    for pid in ssh_hosts.pids(host):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                os.kill(pid, signal.SIGKILL)
        except (FileNotFoundError, ProcessLookupError):
            pass


@pytest.mark.parametrize("option", ["terminate", "requeue"])
def test_an_ssh_host_down_across_an_engine_restart_ends_only_its_run(
        ws: bai.Workspace, ssh_hosts: SSHHosts, tmp_path: Path, src: Path, option: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine dies, then the host of a running ssh run: the next engine (started by a
    submit) runs the new local run, and the ssh run alone fails or is requeued, naming the host."""
    monkeypatch.setenv("BATCHAI_NODE_LOST_SECONDS", "3")  # the restarted engine inherits them
    monkeypatch.setenv("BATCHAI_SSH_IO_TIMEOUT", "2")
    monkeypatch.setenv("BATCHAI_SSH_CONNECT_TIMEOUT", "2")
    index = 2 if option == "terminate" else 1
    host = ssh_hosts.hosts[index]
    make_ssh_cluster(ws, ssh_hosts, name=f"down-{option}", count=1, first=index,
                     node_deallocation_option=option)
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / "loop.py").write_text(textwrap.dedent(LOOP))
    remote = ws.experiment("rc").submit(JobSpec(source_directory=tmp_path / "l", script="loop.py"),
                                        cluster=f"down-{option}")
    assert wait_until(lambda: list(remote.stream("stdout.txt", follow=False)) == ["up"], 90)
    engine = int(engine_info(ws.path)["pid"])
    os.kill(engine, signal.SIGKILL)
    # gone, lock and all: a killed process's threads may still hold its files a moment after it
    # shows as a zombie, and a submit that sees the lock held starts no engine
    assert wait_until(lambda: process_gone(engine) and not is_running(ws.path), 10)
    forget(ws.path)
    _kill_sshd_and_sessions(ssh_hosts, index)
    try:
        local = ws.experiment("rc").submit(JobSpec(source_directory=src, script="train.py", arguments=["1"]))
        # the submit started another engine, which reconciles the run of the host that is down
        assert wait_until(lambda: engine_info(ws.path).get("pid") not in (None, engine), 30)
        assert local.wait_for_completion(show_output=False, timeout=90)["status"] == "Completed"
        if option == "terminate":
            details = remote.wait_for_completion(show_output=False, raise_on_error=False, timeout=60)
            assert details["status"] == "Failed", details
            message = details["error"]["message"]
        else:  # back in the queue, waiting for a host that answers
            assert wait_until(lambda: remote.get_details()["properties"].get("attempt") == 1, 60)
            message = next(e["message"] for e in reversed(remote.get_details()["events"])
                           if e["status"] == "Queued")
            assert message.startswith("requeued: ")
            assert remote.status in ("Queued", "Preparing")
        assert f"node {host.address} lost: unreachable" in message, message
        assert ws.cluster(f"down-{option}").get_status().node_state_counts["unusable"] == 1
    finally:
        ssh_hosts.start_sshd(host)
    if option == "requeue":  # once the host answers, the new attempt runs there
        assert wait_until(lambda: list(remote.stream("stdout.txt", follow=False)) == ["up"], 120), \
            remote.get_details()
        remote.cancel()
        assert remote.wait_for_completion(show_output=False, raise_on_error=False,
                                          timeout=60)["status"] == "Canceled"
    assert wait_until(lambda: not ssh_hosts.job_pids(host), 60), ssh_hosts.job_pids(host)

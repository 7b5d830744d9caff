"""Blocked runs say why: a run waiting for unusable ssh hosts names their errors, a run that
can never be placed (every host refused its key) fails with that error, and so does a run whose
image needs a container runtime its node does not have (it never waits for one)."""
from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.errors import WaitTimeout
from batchai_jupyter.notebook.widget import RunDetails
from batchai_jupyter.view import render
from tests.compute.ssh_env import SSHHosts, make_ssh_cluster, running_hosts
from tests.support import wait_until

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHHosts]:
    """Two real ssh hosts of their own (namespace and subnet apart from the other tests' hosts)."""
    yield from running_hosts(tmp_path_factory.mktemp("why"), count=2)


def _hello(tmp_path: Path) -> Path:
    folder = tmp_path / "hello"
    folder.mkdir(exist_ok=True)
    (folder / "hello.py").write_text("print('hello')\n")
    return folder


def _key(host_key_line: str) -> str:
    return host_key_line.split(" ", 1)[1]


def test_a_run_whose_hosts_all_refused_their_keys_fails_with_the_errors(
        ws: bai.Workspace, hosts: SSHHosts, tmp_path: Path) -> None:
    first, second = hosts.hosts
    known = tmp_path / "known_hosts"  # the first host's key changed, the second's is unknown
    known.write_text(f"{first.address} {_key(second.host_key_line)}\n")
    make_ssh_cluster(ws, hosts, name="badkeys", count=2, known_hosts=str(known))
    run = ws.experiment("why").submit(JobSpec(source_directory=_hello(tmp_path), script="hello.py"),
                                      cluster="badkeys")
    details = run.wait_for_completion(raise_on_error=False, timeout=90)
    assert details["status"] == "Failed", details
    message = details["error"]["message"]
    assert "can never place 1 node(s)" in message
    assert f"host {first.address}: host key changed" in message
    assert f"host {second.address}: unknown host key" in message
    assert "Preparing" not in [e["status"] for e in details["events"]]  # nothing ran there
    assert known.read_text() == f"{first.address} {_key(second.host_key_line)}\n"  # nothing added


def test_a_gang_larger_than_the_hosts_left_fails_but_a_smaller_one_runs(
        ws: bai.Workspace, hosts: SSHHosts, tmp_path: Path) -> None:
    first, second = hosts.hosts
    known = tmp_path / "known_hosts"  # the second host's key is unknown: one host is left
    known.write_text(first.host_key_line + "\n")
    make_ssh_cluster(ws, hosts, name="half", count=2, known_hosts=str(known))
    src = _hello(tmp_path)
    gang = ws.experiment("why").submit(JobSpec(source_directory=src, script="hello.py", node_count=2),
                                       cluster="half")
    details = gang.wait_for_completion(raise_on_error=False, timeout=90)
    assert details["status"] == "Failed", details
    assert "can never place 2 node(s)" in details["error"]["message"]
    assert f"host {second.address}: unknown host key" in details["error"]["message"]
    one = ws.experiment("why").submit(JobSpec(source_directory=src, script="hello.py"), cluster="half")
    assert one.wait_for_completion(timeout=90)["status"] == "Completed"


def test_a_run_waiting_for_a_down_host_says_why_and_starts_once_it_is_back(
        ws: bai.Workspace, hosts: SSHHosts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host down is transient: the run waits (the host is probed again), naming both hosts'
    errors, even though the other host refused its key for good."""
    monkeypatch.setenv("BATCHAI_SSH_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("BATCHAI_NODE_RETRY_SECONDS", "1")
    first, second = hosts.hosts
    known = tmp_path / "known_hosts"  # the second host's key is unknown
    known.write_text(first.host_key_line + "\n")
    hosts.stop_sshd(first)
    try:
        make_ssh_cluster(ws, hosts, name="down", count=2, known_hosts=str(known))
        run = ws.experiment("why").submit(JobSpec(source_directory=_hello(tmp_path), script="hello.py"),
                                          cluster="down")

        def waiting() -> str:
            return str(run.get_details()["properties"].get("waiting") or "")

        assert wait_until(lambda: "unreachable" in waiting() and "unknown host key" in waiting(), 60), \
            (waiting(), ws.cluster("down").nodes())
        assert f"host {first.address}" in waiting() and f"host {second.address}" in waiting()
        assert waiting().startswith("waiting for 1 node(s) of cluster 'down'; unusable nodes: ")
        with pytest.raises(WaitTimeout) as timed_out:
            run.wait_for_completion(timeout=1)
        assert "still Queued" in str(timed_out.value) and "unreachable" in str(timed_out.value)
        shown = io.StringIO()
        with pytest.raises(WaitTimeout) as streamed:  # streaming output does not wedge the timeout
            run.wait_for_completion(show_output=True, timeout=1, out=shown)
        assert "unknown host key" in str(streamed.value)
        props = dict(render.run_properties(run.row()))  # what RunDetails and the summary show
        assert "unreachable" in props["Waiting"] and "unknown host key" in props["Waiting"]
        assert "unknown host key" in run._repr_html_()
        widget = RunDetails(run, poll_seconds=0.05)
        try:
            assert wait_until(lambda: "Waiting" in widget.properties.value
                              and "unknown host key" in widget.properties.value, 30)
        finally:
            widget.close()
        assert run.status == "Queued"  # a host that is down is waited for, not given up
    finally:
        hosts.start_sshd(first)
    details = run.wait_for_completion(timeout=120)
    assert details["status"] == "Completed"
    assert "Waiting" not in dict(render.run_properties(run.row()))


def test_a_run_whose_node_lacks_the_container_runtime_fails_naming_it(ws: bai.Workspace,
                                                                      tmp_path: Path) -> None:
    """The node's PATH holds no runtime (its "python" sets it so): the run fails at once with
    what to do; the node is not given up, a run without an image completes there."""
    empty = tmp_path / "bin"
    empty.mkdir()
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nPATH={empty} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    ws.create_cluster("noruntime", backend="local", max_nodes=1, python=str(python), container_runtime="podman")
    run = ws.experiment("why").submit(JobSpec(source_directory=_hello(tmp_path), script="hello.py",
                                              image="docker.io/library/python:3.11-slim"),
                                      cluster="noruntime")
    details = run.wait_for_completion(raise_on_error=False, timeout=90)
    assert details["status"] == "Failed", details
    message = details["error"]["message"]
    assert "container runtime 'podman' is not installed on node" in message, message
    assert "container_runtime=" in message  # what to do about it
    assert "waiting" not in details["properties"]
    again = ws.experiment("why").submit(JobSpec(source_directory=_hello(tmp_path), script="hello.py"),
                                        cluster="noruntime")
    assert again.wait_for_completion(timeout=90)["status"] == "Completed"
    assert list(again.stream(again.main_log(), follow=False)) == ["hello"]

"""Two test runs on one machine do not meet: each set of ssh hosts has its own names and subnet.

Stands in for two `make test` runs in parallel (separate clones): the session-wide ssh hosts of
both are made side by side here, each is reached over ssh, and stopping one leaves the other
working and removes only its own namespaces.
"""
from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from tests.compute.ssh_env import CLAIMS, SSHHosts, _names, missing_tools


def _netns() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _over_ssh(hosts: SSHHosts, index: int, command: str) -> str:
    host = hosts.hosts[index]
    argv = [*hosts.ssh_command().split(), f"root@{host.address}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def _hostname_over_ssh(hosts: SSHHosts, index: int) -> str:
    return _over_ssh(hosts, index, "hostname")


def test_two_sets_of_hosts_side_by_side_do_not_meet(tmp_path: Path) -> None:
    why = missing_tools()
    if why:
        pytest.skip(reason=f"ssh hosts unavailable: {why}")
    before = _netns()
    first, second = SSHHosts(tmp_path / "a", count=2), SSHHosts(tmp_path / "b", count=2)
    errors: list[BaseException] = []

    def start(hosts: SSHHosts) -> None:
        try:
            hosts.start()
        except BaseException as exc:  # noqa: BLE001 — reported by the test thread below
            errors.append(exc)
    threads = [threading.Thread(target=start, args=(h,)) for h in (first, second)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        assert first.subnet != second.subnet
        names_a = {h.netns for h in first.hosts} | {first.bridge}
        names_b = {h.netns for h in second.hosts} | {second.bridge}
        assert not names_a & names_b
        assert all(len(name) <= 15 for name in (first.bridge, second.bridge, first._veth(1, "h")))
        assert {h.netns for h in first.hosts + second.hosts} <= _netns() - before
        claim = json.loads((CLAIMS / str(first.octet)).read_text())
        assert claim["pid"] > 0
        for hosts in (first, second):
            assert [_hostname_over_ssh(hosts, i) for i in range(2)] == ["node1", "node2"]
            assert _over_ssh(hosts, 0, "echo $TMPDIR") == str(hosts.temp_dir)
        octet = first.octet
        first.stop()
        assert not {h.netns for h in first.hosts} & _netns()
        assert not (CLAIMS / str(octet)).exists()
        assert [_hostname_over_ssh(second, i) for i in range(2)] == ["node1", "node2"]
    finally:
        first.stop()
        second.stop()
    # none of this test's namespaces is left (another test run may have its own meanwhile)
    assert not {h.netns for h in first.hosts + second.hosts} & _netns()


def test_a_claim_left_by_a_killed_run_is_cleaned_up_by_the_next(tmp_path: Path) -> None:
    why = missing_tools()
    if why:
        pytest.skip(reason=f"ssh hosts unavailable: {why}")
    gone = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True)
    killed = SSHHosts(tmp_path / "killed", count=1).start()
    octet, netns = killed.octet, killed.hosts[0].netns
    assert octet is not None
    killed.stop_sshd(killed.hosts[0])
    # what a killed run leaves: its namespace, bridge and a claim whose owner is gone
    (CLAIMS / str(octet)).write_text(json.dumps({"pid": int(gone.stdout), "start": "0"}))
    later = SSHHosts(tmp_path / "later", count=1)
    try:
        later.start()
        assert not (CLAIMS / str(octet)).exists() or later.octet == octet
        assert netns not in _netns() or later.octet == octet
        assert _hostname_over_ssh(later, 0) == "node1"
    finally:
        later.stop()
        killed.octet = None
    assert netns not in _netns() and _names(octet)[1][0] not in _netns()

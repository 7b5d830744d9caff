"""A job in an image on an ssh host (sshd in a network namespace of its own, podman on that
host): the agent on the host starts the container there, with the host's network."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from tests.compute.ssh_env import Host, SSHHosts, make_ssh_cluster, missing_tools
from tests.support import wait_until

pytestmark = pytest.mark.timeout(240)


class CgroupHosts(SSHHosts):
    """The session's ssh hosts, with sshd entered into its namespace by nsenter: `ip netns exec`
    mounts a sysfs of its own, without /sys/fs/cgroup, where no container runtime can work."""

    def start_sshd(self, host: Host) -> None:
        os.makedirs("/run/sshd", exist_ok=True)
        host.sshd = subprocess.Popen(
            ["nsenter", f"--net=/var/run/netns/{host.netns}", "unshare", "--uts", "sh", "-c",
             f"hostname {host.hostname}; exec /usr/sbin/sshd -D -e -f {host.folder}/sshd_config"],
            stdout=subprocess.DEVNULL, stderr=open(host.folder / "sshd.log", "ab"))  # noqa: SIM115
        assert wait_until(lambda: _answers(host.address), 10), (host.folder / "sshd.log").read_text()[-500:]


def _answers(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=0.5) as sock:
            return sock.recv(4).startswith(b"SSH")
    except OSError:
        return False


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHHosts]:
    why = missing_tools() or (None if shutil.which("nsenter") else "nsenter is not installed")
    if why:
        pytest.skip(reason=f"ssh hosts unavailable: {why}")
    hosts = CgroupHosts(tmp_path_factory.mktemp("boxhost"), count=1)
    try:
        hosts.start()
        yield hosts
    finally:
        hosts.stop()


def test_job_in_an_image_on_an_ssh_host(ws: bai.Workspace, tmp_path: Path, image: str, host: SSHHosts) -> None:
    name = make_ssh_cluster(ws, host, name="boxes", count=1)
    (tmp_path / "where.py").write_text(textwrap.dedent("""
        import socket, bai_image_marker
        from batchai_jupyter import Run
        Run.get_context().log("ok", 1)
        print(socket.gethostname(), bai_image_marker.IMAGE_ONLY, flush=True)
    """))
    run = ws.experiment("ssh").submit(JobSpec(source_directory=tmp_path, script="where.py", image=image),
                                      cluster=name)
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", details.get("error")
    # the host's own name (uts and network are the host's), from inside the image
    assert list(run.stream()) == [f"{host.hosts[0].hostname} bai-test-image"]
    assert run.get_metrics()["ok"] == 1

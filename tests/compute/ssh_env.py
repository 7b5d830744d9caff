"""Real OpenSSH hosts for the tests: one sshd per network namespace on a 10.200.<x>.0/24 bridge.

Each host is a network namespace with its own address, hostname (unshare --uts), hosts file and
an empty resolv.conf, joined by a bridge. The filesystem is shared, so every host runs the same
virtualenv; each node gets its own node_root through the `{host}` placeholder.

Several test runs (two clones on one machine, a benchmark next to the tests) must not meet: each
set of hosts claims a free subnet octet <x> with a file created O_EXCL under CLAIMS, and every
name it makes (namespaces, bridge, veths, /etc/netns folders) carries <x>. A set removes only
what it made; a claim whose owner process is gone is cleaned up by the next run that meets it.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CLAIMS = Path("/run/batchai-test-net")   # one file per claimed 10.200.<x>.0/24
OCTETS = range(16, 250)
MAX_HOSTS = 9                             # names stay within Linux's 15-character interface limit


def missing_tools() -> str | None:
    """Why the ssh hosts cannot be made here, or None."""
    for tool in ("/usr/sbin/sshd", "/usr/bin/ssh-keygen"):
        if not os.path.exists(tool):
            return f"{tool} is not installed (run ci/setup-ssh.sh)"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "iproute2/unshare are not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe_name = f"baiprobe{os.getpid()}"
    probe = subprocess.run(["ip", "netns", "add", probe_name], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe_name], capture_output=True, check=False)
    return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/<pid>/stat): pid + start time
    names one process even after its pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _names(octet: int) -> tuple[str, list[str], list[str]]:
    """(bridge, namespaces, host-side veths) of the hosts on 10.200.<octet>."""
    hosts = range(1, MAX_HOSTS + 1)
    return (f"bai{octet}br", [f"bai{octet}n{i}" for i in hosts], [f"bai{octet}v{i}h" for i in hosts])


def _owner_alive(claim: Path) -> bool:
    try:
        owner = json.loads(claim.read_text())
        return _start_time(int(owner["pid"])) == owner["start"]
    except (OSError, ValueError, KeyError, TypeError):
        return False  # a claim cut short by a kill counts as stale


def _octets_in_use() -> set[int]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True,
                         check=False).stdout
    return {int(word.split(".")[2]) for word in out.split() if word.startswith("10.200.")}


def _remove_names(octet: int) -> None:
    bridge, namespaces, veths = _names(octet)
    present = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                 check=False).stdout.split())
    for netns, veth in zip(namespaces, veths):
        if netns in present:
            _ip("netns", "del", netns, check=False)
        shutil.rmtree(Path("/etc/netns") / netns, ignore_errors=True)
        if Path(f"/sys/class/net/{veth}").exists():
            _ip("link", "del", veth, check=False)
    if Path(f"/sys/class/net/{bridge}").exists():
        _ip("link", "del", bridge, check=False)


def _sweep_stale_claims() -> None:
    """Remove what runs that were killed left (their claim's owner process is gone)."""
    for claim in CLAIMS.iterdir():
        if claim.name.isdigit() and not _owner_alive(claim):
            _remove_names(int(claim.name))
            claim.unlink(missing_ok=True)


def claim_subnet() -> int:
    """A 10.200.<x> octet no other live run holds and no interface here uses.

    The claim is written to a private file first and then hard-linked into place: the link
    fails when the name exists, so a claim is never seen half written."""
    CLAIMS.mkdir(parents=True, exist_ok=True)
    _sweep_stale_claims()
    candidates = [o for o in OCTETS if o not in _octets_in_use()]
    random.shuffle(candidates)
    draft = CLAIMS / f".draft-{os.getpid()}-{random.getrandbits(32):08x}"
    draft.write_text(json.dumps({"pid": os.getpid(), "start": _start_time(os.getpid())}))
    try:
        for octet in candidates:
            try:
                os.link(draft, CLAIMS / str(octet))
            except FileExistsError:
                continue
            return octet
    finally:
        draft.unlink()
    raise RuntimeError(f"no free 10.200.x subnet for test ssh hosts (claims in {CLAIMS})")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@dataclass
class Host:
    index: int
    netns: str
    address: str
    hostname: str
    folder: Path
    sshd: subprocess.Popen | None = None
    host_key_line: str = ""


@dataclass
class SSHHosts:
    """N hosts with sshd on port 22, a client key and a known_hosts file with their keys."""

    folder: Path
    count: int = 3
    hosts: list[Host] = field(default_factory=list)
    octet: int | None = None  # claimed by start(): the x of 10.200.x, in every name made

    @property
    def subnet(self) -> str:
        """The hosts' /24 without its last part, e.g. "10.200.37" (claimed by start())."""
        if self.octet is None:
            raise RuntimeError("the hosts are not started: no subnet is claimed yet")
        return f"10.200.{self.octet}"

    @property
    def bridge(self) -> str:
        return _names(self.octet or 0)[0]

    def _veth(self, i: int, side: str) -> str:
        return f"bai{self.octet}v{i + 1}{side}"

    @property
    def temp_dir(self) -> Path:
        """TMPDIR of every ssh session on the hosts (torch's torchelastic_* folders land here)."""
        return self.folder / "tmp"

    @property
    def key_file(self) -> str:
        return str(self.folder / "client_ed25519")

    @property
    def known_hosts(self) -> str:
        return str(self.folder / "known_hosts")

    def ssh_command(self) -> str:
        """What OpenMPI (or a user) uses to reach one host from another."""
        return (f"ssh -i {self.key_file} -o UserKnownHostsFile={self.known_hosts} "
                f"-o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=5")

    def start(self) -> SSHHosts:
        if not 1 <= self.count <= MAX_HOSTS:
            raise ValueError(f"count: {self.count} hosts asked, 1 to {MAX_HOSTS} can be made")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.temp_dir.mkdir(exist_ok=True)
        self.octet = claim_subnet()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key_file],
                       check=True, input="y\n", text=True, capture_output=True)
        shutil.copy(self.key_file + ".pub", self.folder / "authorized_keys")
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        names = "".join(f"{self.subnet}.{i + 2} node{i + 1}\n" for i in range(self.count))
        for i in range(self.count):
            host = Host(i, _names(self.octet)[1][i], f"{self.subnet}.{i + 2}", f"node{i + 1}",
                        self.folder / f"host{i + 1}")
            host.folder.mkdir(exist_ok=True)
            self.hosts.append(host)
            veth_h, veth_n = self._veth(i, "h"), self._veth(i, "n")
            _ip("netns", "add", host.netns)
            _ip("link", "add", veth_h, "type", "veth", "peer", "name", veth_n)
            _ip("link", "set", veth_h, "master", self.bridge, "up")
            _ip("link", "set", veth_n, "netns", host.netns)
            _ip("-n", host.netns, "link", "set", veth_n, "name", "eth0")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
            _ip("-n", host.netns, "route", "add", "default", "via", f"{self.subnet}.1")
            etc = Path("/etc/netns") / host.netns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(f"127.0.0.1 localhost\n{names}")
            (etc / "resolv.conf").write_text("")
            key = host.folder / "host_ed25519"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                           check=True, input="y\n", text=True, capture_output=True)
            host.host_key_line = f"{host.address} " + " ".join(
                Path(str(key) + ".pub").read_text().split()[:2])
            (host.folder / "sshd_config").write_text(
                f"Port 22\nListenAddress {host.address}\nHostKey {key}\n"
                f"PidFile {host.folder}/sshd.pid\nAuthorizedKeysFile {self.folder}/authorized_keys\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
                "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nMaxSessions 50\n"
                "MaxStartups 50\nSubsystem sftp internal-sftp\n"
                f"SetEnv TMPDIR={self.temp_dir}\n")  # sessions' temp files stay in our folder
        Path(self.known_hosts).write_text("".join(h.host_key_line + "\n" for h in self.hosts))
        for host in self.hosts:
            self.start_sshd(host)
        return self

    def start_sshd(self, host: Host) -> None:
        os.makedirs("/run/sshd", exist_ok=True)
        host.sshd = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, "unshare", "--uts", "sh", "-c",
             f"hostname {host.hostname}; exec /usr/sbin/sshd -D -e -f {host.folder}/sshd_config"],
            stdout=subprocess.DEVNULL, stderr=open(host.folder / "sshd.log", "ab"))  # noqa: SIM115
        end = time.time() + 10
        while time.time() < end:
            try:  # the test's own namespace reaches every host over the bridge
                with socket.create_connection((host.address, 22), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"SSH"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd on {host.address} did not start: "
                           f"{(host.folder / 'sshd.log').read_text()[-500:]}")

    def stop_sshd(self, host: Host) -> None:
        """Kill the listening sshd (sessions already open stay, as when sshd dies on a node)."""
        if host.sshd is not None and host.sshd.poll() is None:
            host.sshd.send_signal(signal.SIGKILL)
            host.sshd.wait(10)
        host.sshd = None

    def set_link(self, host: Host, up: bool) -> None:
        _ip("link", "set", self._veth(host.index, "h"), "up" if up else "down")

    def pids(self, host: Host) -> list[int]:
        """Every process living in the host's network namespace."""
        out = _ip("netns", "pids", host.netns, check=False).stdout
        return [int(p) for p in out.split()]

    def job_pids(self, host: Host) -> list[int]:
        """Processes in the namespace other than sshd itself (its listener and sessions)."""
        keep = []
        for pid in self.pids(host):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm not in ("sshd",):
                keep.append(pid)
        return keep

    def stop(self) -> None:
        for host in self.hosts:
            for pid in self.pids(host):  # agents and jobs too: nothing outlives the hosts
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if host.sshd is not None:
                host.sshd.wait(10)
        self.stop_network()

    def stop_network(self) -> None:
        """Remove what start() made (only that: other runs' hosts stay) and free the subnet."""
        if self.octet is None:
            return
        _remove_names(self.octet)
        (CLAIMS / str(self.octet)).unlink(missing_ok=True)
        self.octet = None


def running_hosts(folder: Path, **options: Any) -> Iterator[SSHHosts]:
    """For a fixture: started hosts (a test skipped with the reason where they cannot run),
    stopped afterwards, also when starting them failed half way."""
    why = missing_tools()
    if why:
        pytest.skip(reason=f"ssh hosts unavailable: {why}")
    hosts = SSHHosts(folder, **options)
    try:
        hosts.start()
    except Exception:
        hosts.stop()
        raise
    yield hosts
    hosts.stop()


def make_ssh_cluster(ws: Any, hosts: SSHHosts, name: str = "sshpool", count: int = 2,
                     first: int = 0, **options: Any) -> str:
    """An ssh cluster over `count` of the session's hosts; node roots live in the workspace."""
    config: dict[str, Any] = {
        "hosts": [h.address for h in hosts.hosts[first:first + count]], "user": "root",
        "key_file": hosts.key_file, "known_hosts": hosts.known_hosts, "python": sys.executable,
        "node_root": f"{ws.path}/sshnodes/{{host}}", "max_nodes": count,
        "mpi_mca": {"plm_rsh_agent": hosts.ssh_command(), "btl_tcp_if_include": "eth0",
                    "oob_tcp_if_include": "eth0"},
    }
    config.update(options)
    ws.create_cluster(name, backend="ssh", **config)
    return name

"""A real Slurm for the tests: munged, slurmctld and two slurmd (n1, n2) on loopback.

Started once per test session in a temp folder with its own munge socket and free ports, so it
touches no system service; stopped by PID when the session ends. Each node advertises two fake
GPUs (character devices made with mknod) so `--gres=gpu:N` is scheduled for real. When Slurm
cannot start, `slurm_or_skip()` skips the test with the reason.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

NODES = ("n1", "n2")
GPUS_PER_NODE = 2
_STATE: dict[str, Any] = {}


@dataclass
class SlurmEnv:
    """One running test Slurm: its folder, config file and the PIDs we started."""

    root: Path
    conf: Path
    pids: dict[str, int] = field(default_factory=dict)
    gpus: int = 0

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def run(self, *argv: str, check: bool = True) -> str:
        """A Slurm command against this cluster (scontrol, squeue, ...); its stdout."""
        proc = subprocess.run(list(argv), capture_output=True, text=True, env=self.env, timeout=30,
                              check=False)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {proc.stderr.strip()}")
        return proc.stdout

    def cancel_all(self) -> None:
        """Leave the nodes free for the next test: cancel every job and wait until none runs."""
        self.run("scancel", "--user", "root", check=False)
        end = time.time() + 20
        while time.time() < end:
            if not self.run("squeue", "-h", "-t", "PD,R,CG,CF", check=False).strip():
                return
            time.sleep(0.2)

    def stop(self) -> None:
        if "slurmctld" in self.pids:
            with contextlib.suppress(Exception):  # a job left running would outlive slurmd
                self.cancel_all()
        for name in ("slurmd-n2", "slurmd-n1", "slurmctld", "munged"):
            pid = self.pids.pop(name, None)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            end = time.time() + 5
            while time.time() < end and _alive(pid):
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _free_ports(count: int) -> list[int]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _fake_gpus(root: Path) -> str:
    """Two character devices per node that Slurm's gres/gpu plugin accepts as GPUs."""
    devices = root / "dev"
    devices.mkdir()
    try:
        for i in range(GPUS_PER_NODE):
            subprocess.run(["mknod", str(devices / f"gpu{i}"), "c", "1", str(3 + 2 * i)],
                           check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f"Name=gpu File={devices}/gpu[0-{GPUS_PER_NODE - 1}]\n"


def _config(root: Path, munge: Path, ports: list[int], gres: str) -> str:
    host = socket.gethostname()
    gres_opt = f" Gres=gpu:{GPUS_PER_NODE}" if gres else ""
    lines = [
        "ClusterName=baitest", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={ports[0]}",
        "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge", "CredType=cred/munge",
        f"AuthInfo=socket={munge}/sock", f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool/%n", f"SlurmctldPidFile={root}/slurmctld.pid",
        f"SlurmdPidFile={root}/slurmd.%n.pid", f"SlurmctldLogFile={root}/slurmctld.log",
        f"SlurmdLogFile={root}/slurmd.%n.log", "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none", "SwitchType=switch/none", "MpiDefault=none", "ReturnToService=2",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "KillWait=5", "MinJobAge=600", "SchedulerParameters=sched_interval=1",
    ]
    if gres:
        lines.append("GresTypes=gpu")
    for node, port in zip(NODES, ports[1:]):
        lines.append(f"NodeName={node} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} "
                     f"CPUs=1 RealMemory=1000{gres_opt}")
    lines.append("PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
    lines.append("PartitionName=short Nodes=n1 MaxTime=60 State=UP")
    return "\n".join(lines) + "\n"


def start_slurm(root: Path) -> SlurmEnv:
    """Start munged, slurmctld and two slurmd under `root`; raises with the reason if they cannot run."""
    for tool in ("munged", "slurmctld", "slurmd", "sbatch"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise RuntimeError(f"{tool} is not installed (run ci/setup-slurm.sh)")
    if not Path("/etc/munge/munge.key").exists():
        raise RuntimeError("/etc/munge/munge.key is missing (run ci/setup-slurm.sh)")
    for sub in ("state", "spool"):
        (root / sub).mkdir(parents=True)
    # munged runs as root (--force) so its socket can live in pytest's private folder and its
    # command line names that folder; every Slurm client here is root as well
    munge = root / "munge"
    munge.mkdir(mode=0o755)
    gres = _fake_gpus(root)
    (root / "gres.conf").write_text(gres)
    conf = root / "slurm.conf"
    conf.write_text(_config(root, munge, _free_ports(3), gres))
    env = SlurmEnv(root, conf, gpus=GPUS_PER_NODE if gres else 0)
    logs = open(root / "daemons.out", "ab")  # noqa: SIM115 — the daemons write to it
    procs = {"munged": subprocess.Popen(
        ["/usr/sbin/munged", "-F", "--force", f"--socket={munge}/sock", f"--pid-file={munge}/pid",
         f"--log-file={munge}/log", f"--seed-file={munge}/seed"],
        stdout=logs, stderr=logs, stdin=subprocess.DEVNULL)}
    env.pids["munged"] = procs["munged"].pid
    if not _wait(lambda: (munge / "sock").exists(), 10):
        env.stop()
        raise RuntimeError(f"munged did not start: {(root / 'daemons.out').read_text()[-500:]}")
    daemons = [("slurmctld", ["slurmctld", "-D", "-f", str(conf)])]
    daemons += [(f"slurmd-{n}", ["slurmd", "-D", "-N", n, "-f", str(conf)]) for n in NODES]
    for name, argv in daemons:
        env.pids[name] = subprocess.Popen(argv, env=env.env, stdout=logs, stderr=logs,
                                          stdin=subprocess.DEVNULL, start_new_session=True).pid

    def idle() -> bool:
        out = env.run("sinfo", "-h", "-N", "-p", "debug", "-o", "%N %t", check=False).split()
        return out.count("idle") == len(NODES)
    if not _wait(idle, 30):
        tail = (root / "slurmctld.log").read_text()[-1500:] if (root / "slurmctld.log").exists() else ""
        state = env.run("sinfo", "-N", check=False)
        env.stop()
        raise RuntimeError(f"slurm nodes did not become idle:\n{state}\n{tail}")
    return env


def _wait(predicate: Any, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def slurm_env(tmp_path_factory: pytest.TempPathFactory) -> SlurmEnv:
    """The session's Slurm, started on first use (skips the test with the reason if it cannot)."""
    if "error" in _STATE:
        pytest.skip(reason=f"Slurm is not available: {_STATE['error']}")
    if "env" not in _STATE:
        try:
            env = start_slurm(tmp_path_factory.mktemp("slurm", numbered=True))
        except Exception as exc:  # noqa: BLE001 — any start failure is the skip reason
            _STATE["error"] = str(exc)
            print(f"\nSlurm is not available: {exc}", file=sys.stderr)
            pytest.skip(reason=f"Slurm is not available: {exc}")
        _STATE["env"] = env
        atexit.register(env.stop)
    return _STATE["env"]


def make_slurm_cluster(ws: Any, tmp_path_factory: pytest.TempPathFactory, name: str = "slurm",
                       **options: Any) -> str:
    """Register a slurm cluster in `ws` that runs jobs on the session's slurmctld + two slurmd."""
    env = slurm_env(tmp_path_factory)
    env.cancel_all()  # jobs a previous test left must not hold the nodes
    config: dict[str, Any] = {
        "partition": "debug", "max_nodes": len(NODES), "shared_root": str(ws.path / "slurm-root"),
        "python": sys.executable, "slurm_conf": str(env.conf),
        "poll_min_seconds": 0.2, "poll_max_seconds": 2.0,
    }
    config.update(options)
    ws.create_cluster(name, backend="slurm", **config)
    return name

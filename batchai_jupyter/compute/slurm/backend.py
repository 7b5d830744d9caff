"""The slurm backend: one sbatch allocation per run; the same node agent on every node via srun.

Slurm owns the nodes, so this backend keeps no pool. `allocate` writes a batch script into the
run's job folder on the cluster's shared root (a folder every node sees) and submits it; it
answers Pending while the job is pending, and Granted with the nodes once Slurm started it (the
script records them). The script then runs `srun ... python -m batchai_jupyter.node.agent
<run.json>` with one task per node; each task waits for its own node's manifest, which the
engine writes as for any backend. All job states come from one batched, rate-limited squeue
(watch.py); the job bookkeeping is jobs.py. A job that Slurm ends under a run (time limit,
scancel by an admin, node failure) ends the run with the Slurm state as its cause (agents.py).
Commands run here, or on `login_host` over SSH.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from ...errors import SpecError
from ...history import RunHistory
from ...node.paths import mca_path
from ...records import RunRow
from ..base import Compute, DiskTarget, NodeInfo
from ..outcomes import Allocation, Evict, Granted, Pending, Refused
from ..transport import LocalTransport, Transport
from .agents import speak_for_agents
from .commands import NodeAddresses, SlurmCommands, partitions, split_host
from .config import check_settings
from .jobs import ACTIVE, Job, SlurmJobs, job_of, note
from .script import BatchScriptMixin, run_key
from .watch import SlurmWatcher

log = logging.getLogger("batchai_jupyter.engine")

ENDED_GRACE_SECONDS = 2.0      # let agents finish their last writes before speaking for them


def login_transport(config: dict[str, Any]) -> Transport:
    """The SSH connection to the cluster's login host (paramiko: only for clusters with one)."""
    from ..ssh.transport import SSHTransport
    host, port = split_host(config["login_host"])
    return SSHTransport(host, port, config.get("user"), config.get("key_file"), config.get("known_hosts"))


class SlurmCompute(BatchScriptMixin, Compute):
    """A Slurm partition as a cluster: no pool of our own, one job per run, state from squeue."""

    backend = "slurm"
    queues_itself = True  # every queued run is submitted; Slurm decides the order (backfill)
    shared_object_cache = True  # every node reads the shared root's object cache
    live_properties = ("slurm_state", "slurm_reason")  # shown only while the run holds its job

    commands: SlurmCommands

    def __init__(self, config: dict[str, Any], workspace_path: Path, history: RunHistory):
        self._login: Transport | None = None
        self._watcher: SlurmWatcher | None = None
        super().__init__(config, workspace_path, history)  # sets self.config: commands and watcher
        self.prefix = "bai-" + hashlib.sha1(str(self.workspace_path).encode()).hexdigest()[:6] + "-"
        self.jobs = SlurmJobs(self)
        self.addresses = NodeAddresses()
        self._local = LocalTransport()

    # -- configuration --------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self._config

    @config.setter
    def config(self, value: dict[str, Any]) -> None:
        """New settings (the engine passes them on cluster.update) reach the commands and watcher."""
        self._config = value
        remote = self._remote_run if value.get("login_host") else None
        self.commands = SlurmCommands(value, remote)
        low, high = float(value.get("poll_min_seconds", 0.5)), float(value.get("poll_max_seconds", 5.0))
        if self._watcher is None:
            self._watcher = SlurmWatcher(self.commands, low, high)
        else:
            self._watcher.commands = self.commands
            self._watcher.min_interval, self._watcher.max_interval = low, max(low, high)

    @property
    def watcher(self) -> SlurmWatcher:
        """The one squeue watcher of this cluster (made with the first settings)."""
        assert self._watcher is not None
        return self._watcher

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Typed errors for a slurm cluster's settings, checked against the real partitions."""
        check_settings(config)
        partition = config.get("partition")
        login = login_transport(config) if config.get("login_host") else None
        try:
            found = partitions(SlurmCommands(config, login.run if login else None), config.get("name"))
        finally:
            if login is not None:
                login.close()
        if partition is not None and partition not in found:
            raise SpecError("partition", f"{partition!r} is not a partition of this Slurm cluster",
                            sorted(found))
        name = partition or next((p for p, (_, default) in found.items() if default), None)
        if name is not None and config["max_nodes"] > found[name][0]:
            raise SpecError("max_nodes", f"{config['max_nodes']} is more than the {found[name][0]} "
                            f"node(s) of partition {name!r}", f"1..{found[name][0]}")
        return config

    # -- where things are ---------------------------------------------------------------------------
    @property
    def shared_root(self) -> str:
        return str(self.config["shared_root"]).rstrip("/")

    def job_dir(self, key: str) -> str:
        return f"{self.shared_root}/slurm/{key}"

    def node_root(self, node: NodeInfo) -> str:
        return f"{self.shared_root}/nodes/{node.id}"

    def objects_dir(self, node: NodeInfo) -> str:
        return f"{self.shared_root}/objects"

    def shared_dir(self) -> str | None:
        return self.shared_root

    def disk_targets(self) -> list[DiskTarget]:
        """One target for the whole shared root: every node folder and the one object cache."""
        here = NodeInfo(id=f"{self.name}-shared-root", address=None, state="idle")
        return [DiskTarget(here, [f"{self.shared_root}/nodes/*"], self.objects_dir(here), self.nodes())]

    def transport(self, node: NodeInfo | None = None) -> Transport:
        """The shared root is read here, or through the login host when there is one."""
        if not self.config.get("login_host"):
            return self._local
        return self._login_transport()

    def _login_transport(self) -> Transport:
        if self._login is None:
            self._login = login_transport(self.config)
        return self._login

    def _remote_run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        return self._login_transport().run(argv, timeout=timeout)

    # -- allocation -----------------------------------------------------------------------------------
    def allocate(self, run: RunRow, count: int) -> Allocation:
        """Submit the run's job once; Pending while Slurm has not started it, then its nodes."""
        self.jobs.sweep_once()
        waiting = f"waiting for {count} node(s) of cluster {self.name!r}"
        key = run_key(run)
        job = self.jobs.pending.get(run["id"])
        if job is None or job.key != key:
            submitted = self.jobs.submit(run, key, count)
            if not isinstance(submitted, Job):
                return submitted or Pending(waiting)
            job = self.jobs.pending[run["id"]] = submitted
        started = self.jobs.progress(run, job, waiting)
        if isinstance(started, (Pending, Refused)):
            return started
        nodes = [self._granted_node(name, run["id"], job.job_id) for name in started]
        return Granted(nodes, note(run, job.job_id, "RUNNING", "None"))

    def _granted_node(self, name: str, run_id: str, job_id: str) -> NodeInfo:
        gpus = self.gpus_per_node()
        node = NodeInfo(id=name, address=self.addresses.of(name, self.commands), state="preparing",
                        gpus=gpus, run_id=run_id,
                        info={"slurm_job_id": job_id, "gpu_ids": [str(i) for i in range(gpus)]})
        node.info["path"] = self.node_root(node)
        mca = self.config.get("mpi_mca")
        if mca:  # the cluster's OpenMPI settings, where the node's mpirun reads them
            self.transport(node).write_bytes(mca_path(self.node_root(node)), json.dumps(mca).encode())
        self.set_node_state(node, "preparing", run_id)
        return node

    # -- running and after -----------------------------------------------------------------------------
    def launch(self, node: NodeInfo, manifest_path: str, log_path: str) -> None:
        """The agent starts through srun in the batch script; here the job is only watched."""
        job_id = node.info.get("slurm_job_id")
        if job_id:
            self.watcher.track(str(job_id))

    def release(self, run_id: str) -> None:
        run = self.history.run_row(run_id)
        if run is not None and job_of(run) and run["status"] != "Queued":
            try:  # the batch script may end now
                self.transport().write_bytes(f"{self.job_dir(run_key(run))}/released", b"")
            except OSError as exc:
                log.warning("run %s: cannot mark its job released: %s", run_id, exc)
        job_ids = []
        for node in self.nodes():
            if node.run_id == run_id:
                self.history.delete_node(self.name, node.id)
                job_id = node.info.get("slurm_job_id")
                if job_id:
                    job_ids.append(str(job_id))
        self.jobs.let_go(run_id, job_ids)

    def kill_groups(self, node: NodeInfo, pgids: list[int]) -> None:
        """A lost agent's process groups, killed on its node by a step inside the job.

        Processes whose agent died are re-parented away from the job step, so Slurm alone may
        not find them. The batch script holds the allocation until release(), so the step can run.
        """
        job_id = node.info.get("slurm_job_id")
        if not job_id or not pgids:
            return
        line = "kill -KILL " + " ".join(f"-{int(p)}" for p in pgids) + " 2>/dev/null; true"
        code, _out, err = self.commands.on_node(str(job_id), node.id, "/bin/sh", "-c", line)
        if code != 0:
            log.warning("cannot kill process groups on node %s: %s", node.id, err.strip())

    def free_port(self, node: NodeInfo) -> int:
        """A TCP port free on the node now (MASTER_PORT), asked by a step inside the run's job."""
        code, out, err = self.commands.on_node(
            str(node.info.get("slurm_job_id")), node.id, self.python(node), "-c",
            "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])")
        if code != 0:
            raise OSError(f"node {node.id}: cannot pick a port: {err.strip()}")
        return int(out.strip().splitlines()[-1])

    def scancel(self, job_id: str) -> None:
        self.jobs.scancel(job_id)

    def maintain(self) -> list[Evict]:
        """Poll Slurm once for all jobs; cancel jobs no run needs; speak for agents Slurm killed."""
        self.jobs.sweep_once()
        for node in self.nodes():  # Slurm nodes are ours only while a run holds them
            if node.run_id is None and node.state == "idle":
                self.history.delete_node(self.name, node.id)
        started: dict[str, RunRow] = {}
        for run in self.history.run_rows(status=ACTIVE, cluster=self.name):
            job_id = job_of(run)
            if run["status"] != "Queued" and job_id:
                started[job_id] = run
                self.watcher.track(job_id)
        self.jobs.settle(set(started))
        self.watcher.poll()
        now = time.time()
        for job_id, run in started.items():
            info = self.watcher.info(job_id)
            if info is None or info.live or info.state == "UNKNOWN":
                continue
            if now - info.seen >= ENDED_GRACE_SECONDS:
                roots = [f"{self.shared_root}/nodes/{row['id']}" for row in run["nodes"]]
                speak_for_agents(self.transport(), roots, run, run_key(run), job_id, info.state, info.reason)
        return []

    def delete(self) -> None:
        """Cancel every job the cluster's runs held or still have queued; forget the nodes."""
        for node in self.nodes():
            job_id = node.info.get("slurm_job_id")
            if job_id:
                self.jobs.scancel(str(job_id))
            self.history.delete_node(self.name, node.id)
        self.jobs.cancel_all()

    def close(self) -> None:
        """Jobs outlive the engine; only a cluster being deleted cancels what it still has queued."""
        row = self.history.cluster_row(self.name) if self.history is not None else {}
        if row is None or row.get("deleting"):
            self.jobs.cancel_all()
        if self._login is not None:
            self._login.close()
            self._login = None

"""The slurm backend: one sbatch allocation per run; the same node agent on every node via srun.

Slurm owns the nodes, so this backend keeps no pool. `allocate` writes a batch script into the
run's job folder on the cluster's shared root (a folder every node sees) and submits it; it
answers None while the job is pending, and the nodes once Slurm started it (the script records
them). The script then runs `srun ... python -m batchai_jupyter.node.agent <run.json>` with one
task per node; each task waits for its own node's manifest, which the engine writes as for any
backend. All job states come from one batched, rate-limited squeue (slurm_watch.py). A job that
Slurm ends under a run (time limit, scancel by an admin, node failure) fails the run with the
Slurm state as its cause. Commands run here, or on `login_host` over SSH.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from ...errors import ClusterError, SpecError
from ...node.launch_dist import MCA_FILE
from ...node.paths import RunPaths
from ..base import Compute, NodeInfo
from .config import check_settings
from .script import BatchScriptMixin, run_key
from .watch import GONE, NEVER_STARTS, UNREACHABLE, SlurmCommands, SlurmWatcher
from ..transport import LocalTransport, Transport

log = logging.getLogger("batchai_jupyter.engine")

ENDED_GRACE_SECONDS = 2.0      # let agents finish their last writes before speaking for them
RELEASE_GRACE_SECONDS = 10.0   # a released job still alive after this is scancel'ed
NODES_CHECK_SECONDS = 1.0      # how often a long-pending job's "nodes" file is looked for
FRESH_SECONDS = 5.0            # ... and every engine tick for this long after sbatch
ACTIVE = ("Queued", "Preparing", "Running", "Finalizing", "CancelRequested")


@dataclass
class _Job:
    job_id: str
    key: str       # run id, or "<run id>.<attempt>" after a requeue (RunPaths' run folder name)
    checked: float = 0.0  # when the shared root was last asked whether the job started
    submitted: float = 0.0


class SlurmCompute(BatchScriptMixin, Compute):
    """A Slurm partition as a cluster: no pool of our own, one job per run, state from squeue."""

    backend = "slurm"
    queues_itself = True  # every queued run is submitted; Slurm decides the order (backfill)

    commands: SlurmCommands
    watcher: SlurmWatcher

    def __init__(self, *args: Any, **kwargs: Any):
        self._login: Any = None
        super().__init__(*args, **kwargs)  # sets self.config, which builds commands and watcher
        self.prefix = "bai-" + hashlib.sha1(str(self.workspace_path).encode()).hexdigest()[:6] + "-"
        self._pending: dict[str, _Job] = {}     # queued run -> its submitted, not yet started job
        self._released: dict[str, float] = {}   # job id -> when its run let go of it
        self._objects: set[str] = set()          # digests known to be in the shared object cache
        self._addresses: dict[str, str] = {}
        self._swept = False
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
        if not hasattr(self, "watcher"):
            self.watcher = SlurmWatcher(self.commands, low, high)
        else:
            self.watcher.commands = self.commands
            self.watcher.min_interval, self.watcher.max_interval = low, max(low, high)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Typed errors for a slurm cluster's settings, checked against the real partitions."""
        check_settings(config)
        partition = config.get("partition")
        probe = cls(dict(config), _no_path(), None)  # type: ignore[arg-type]
        try:
            partitions = probe.partitions()
        finally:
            probe.close()
        if partition is not None and partition not in partitions:
            raise SpecError("partition", f"{partition!r} is not a partition of this Slurm cluster",
                            sorted(partitions))
        name = partition or next((p for p, (_, default) in partitions.items() if default), None)
        if name is not None and config["max_nodes"] > partitions[name][0]:
            raise SpecError("max_nodes", f"{config['max_nodes']} is more than the {partitions[name][0]} "
                            f"node(s) of partition {name!r}", f"1..{partitions[name][0]}")
        return config

    def partitions(self) -> dict[str, tuple[int, bool]]:
        """Partition name -> (node count, is the default), from one sinfo call."""
        code, out, err = self.commands("sinfo", "--noheader", "--format=%P|%D", timeout=30)
        if code != 0:
            raise ClusterError(f"slurm cluster {self.config.get('name')!r}: cannot run sinfo "
                               f"{self.commands.where}: {err.strip() or f'exit code {code}'}")
        found: dict[str, tuple[int, bool]] = {}
        for line in out.splitlines():
            part, _, count = line.strip().partition("|")
            if part:
                default = part.endswith("*")
                name = part.rstrip("*")
                prev = found.get(name, (0, False))
                found[name] = (prev[0] + int(count or 0), prev[1] or default)
        return found

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

    def python(self, node: NodeInfo | None) -> str:
        return self.config.get("python") or "python3"

    def capacity(self) -> int:
        return int(self.config.get("max_nodes", 0))

    def transport(self, node: NodeInfo | None = None) -> Transport:
        """The shared root is read here, or through the login host when there is one."""
        if not self.config.get("login_host"):
            return self._local
        return self._login_transport()

    def _login_transport(self) -> Transport:
        if self._login is None:
            from ..ssh.transport import SSHTransport  # paramiko: only for clusters with a login host
            host, port = split_host(self.config["login_host"])
            self._login = SSHTransport(host, port, self.config.get("user"), self.config.get("key_file"),
                                       self.config.get("known_hosts"))
        return self._login

    def _remote_run(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        return self._login_transport().run(argv, timeout=timeout)

    # -- allocation -----------------------------------------------------------------------------------
    def allocate(self, run_id: str, count: int) -> list[NodeInfo] | None:
        """Submit the run's job once; None while Slurm has not started it, then its nodes."""
        self._sweep_once()
        run = self.history.run_row(run_id)
        if run is None:
            return None
        key = run_key(run)
        job = self._pending.get(run_id)
        if job is None or job.key != key:
            job = self._submit(run, key, count)
            if job is None:
                return None
            self._pending[run_id] = job
        self.watcher.poll()
        info = self.watcher.info(job.job_id)
        now = time.time()
        if info is not None and info.state == "PENDING" and now - job.checked < NODES_CHECK_SECONDS \
                and now - job.submitted > FRESH_SECONDS:
            return None  # long pending: look at the shared root only now and then
        job.checked = now
        names = self._started_nodes(job)
        if names is None:
            if info is not None and info.state not in ("UNKNOWN",) and not info.live:
                del self._pending[run_id]
                self.watcher.forget(job.job_id)
                why = f" ({info.reason})" if info.reason and info.reason != "None" else ""
                self._fail_run(run_id, f"Slurm job {job.job_id} ended {info.state}{why} before it started")
            elif info is not None and info.state == "PENDING" and info.reason in NEVER_STARTS \
                    and now - info.reason_since >= float(self.config.get("never_starts_seconds", 10)):
                del self._pending[run_id]
                self.scancel(job.job_id)
                self._fail_run(run_id, f"Slurm will never start job {job.job_id}: {info.reason} "
                               f"({NEVER_STARTS[info.reason]})")
            elif info is not None:
                self._note(run, job.job_id, info.state, info.reason)
            return None
        del self._pending[run_id]
        nodes = []
        for name in names:
            gpus = self.gpus_per_node()
            node = NodeInfo(id=name, address=self._address(name), state="preparing", gpus=gpus,
                            run_id=run_id, info={"slurm_job_id": job.job_id,
                                                 "gpu_ids": [str(i) for i in range(gpus)]})
            node.info["path"] = self.node_root(node)
            self._write_mca(node)
            self.set_node_state(node, "preparing", run_id)
            nodes.append(node)
        self._note(self.history.run_row(run_id) or run, job.job_id, "RUNNING", "None")
        return nodes

    def _write_mca(self, node: NodeInfo) -> None:
        """The cluster's OpenMPI settings (mpi_mca=) where the node's mpirun reads them."""
        mca = self.config.get("mpi_mca")
        if mca:
            self.transport(node).write_bytes(f"{self.node_root(node)}/{MCA_FILE}",
                                             json.dumps(mca).encode())

    def _note(self, run: dict[str, Any], job_id: str, state: str, reason: str) -> None:
        """Show the Slurm job and its state in the run's properties (only when they change)."""
        props = run["properties"]
        if props.get("slurm_job_id") != job_id or props.get("slurm_state") != state:
            self.history.update_run(run["id"], properties=dict(
                props, slurm_job_id=job_id, slurm_state=state,
                slurm_reason=reason if reason and reason != "None" else None))

    def _started_nodes(self, job: _Job) -> list[str] | None:
        raw = self.transport().read_bytes(f"{self.job_dir(job.key)}/nodes")
        if raw is None:
            return None
        words = raw.decode().split()
        if len(words) < 2 or words[0] != job.job_id:
            return None  # left by an earlier job of the same run folder
        return words[1:]

    def _address(self, name: str) -> str:
        if name not in self._addresses:
            code, out, _err = self.commands("sinfo", "--noheader", "--Node", "--format=%N|%o", timeout=30)
            if code == 0:
                for line in out.splitlines():
                    node, _, addr = line.strip().partition("|")
                    if node:
                        self._addresses[node] = addr or node
        return self._addresses.get(name, name)

    def _submit(self, run: dict[str, Any], key: str, count: int) -> _Job | None:
        path = f"{self.job_dir(key)}/job.sh"
        try:
            transport = self.transport()
            transport.write_bytes(path, self.batch_script(run, key, count).encode(), 0o755)
        except OSError as exc:  # the shared root (or the login host) is not reachable now
            log.warning("run %s: cannot write %s (%s); trying again", run["id"], path, exc)
            return None
        code, out, err = self.commands("sbatch", "--parsable", path, timeout=60)
        if code == UNREACHABLE and self.config.get("login_host"):
            log.warning("run %s: sbatch not sent (%s); trying again", run["id"], err.strip())
            return None
        if code != 0:
            self._fail_run(run["id"], f"sbatch refused the job of run {run['id']} "
                                      f"{self.commands.where}: {err.strip() or f'exit code {code}'}")
            return None
        job_id = out.strip().split(";")[0]
        try:  # for people looking at the folder; the engine finds its jobs by name
            transport.write_bytes(f"{self.job_dir(key)}/job_id", job_id.encode())
        except OSError:
            pass
        self.watcher.track(job_id)
        log.info("run %s: Slurm job %s submitted", run["id"], job_id)
        return _Job(job_id, key, submitted=time.time())

    def _fail_run(self, run_id: str, message: str) -> None:
        """A run that cannot start on Slurm ends here, with Slurm's answer as its error."""
        log.warning("run %s: %s", run_id, message)
        from ...secrets_store import SecretStore
        SecretStore(self.workspace_path / "secrets.json").delete("runs", run_id)
        self.history.set_status(run_id, "Failed", message, error={"message": message, "exit_codes": {}})

    # -- running and after -----------------------------------------------------------------------------
    def launch(self, node: NodeInfo, manifest_path: str, log_path: str) -> None:
        """The agent starts through srun in the batch script; here the job is only watched."""
        job_id = node.info.get("slurm_job_id")
        if job_id:
            self.watcher.track(str(job_id))

    def ensure_objects(self, node: NodeInfo, digests: list[str], store: Any) -> int:
        """The shared root's object cache serves every node: each object is sent once."""
        missing = [d for d in digests if d not in self._objects]
        if not missing:
            return 0
        transport = self.transport(node)
        objects = self.objects_dir(node)
        have = {rel.replace("/", "") for rel in transport.list_files(objects)}
        sent = 0
        for digest in missing:
            if digest not in have:
                transport.put_file(store.object_path(digest), f"{objects}/{digest[:2]}/{digest[2:]}", 0o644)
                sent += 1
            self._objects.add(digest)
        return sent

    def release(self, run_id: str) -> None:
        run = self.history.run_row(run_id)
        if run is not None and _job_of(run) and run["status"] != "Queued":
            try:  # the batch script may end now
                self.transport().write_bytes(f"{self.job_dir(run_key(run))}/released", b"")
            except OSError as exc:
                log.warning("run %s: cannot mark its job released: %s", run_id, exc)
        for row in self.history.nodes(self.name):
            if row["run_id"] == run_id:
                self.history.delete_node(self.name, row["id"])
                job_id = (row["info"] or {}).get("slurm_job_id")
                if job_id:
                    self._released.setdefault(str(job_id), time.time())
        job = self._pending.pop(run_id, None)
        if job is not None:
            self._released[job.job_id] = 0.0  # never started for us: cancel at once
        if run is not None and "slurm_state" in run["properties"]:  # live state only while it runs
            props = {k: v for k, v in run["properties"].items() if k not in ("slurm_state", "slurm_reason")}
            self.history.update_run(run_id, properties=props)

    def kill_groups(self, node: NodeInfo, pgids: list[int]) -> None:
        """A lost agent's process groups, killed on its node by a step inside the job.

        Processes whose agent died are re-parented away from the job step, so Slurm alone may
        not find them. The batch script holds the allocation until release(), so the step can run.
        """
        job_id = node.info.get("slurm_job_id")
        if not job_id or not pgids:
            return
        line = "kill -KILL " + " ".join(f"-{int(p)}" for p in pgids) + " 2>/dev/null; true"
        code, _out, err = self.commands("srun", f"--jobid={job_id}", "--overlap", f"--nodelist={node.id}",
                                        "--nodes=1", "--ntasks=1", "/bin/sh", "-c", line, timeout=30)
        if code != 0:
            log.warning("cannot kill process groups on node %s: %s", node.id, err.strip())

    def free_port(self, node: NodeInfo) -> int:
        """A TCP port free on the node now (MASTER_PORT), asked by a step inside the run's job."""
        code, out, err = self.commands(
            "srun", f"--jobid={node.info.get('slurm_job_id')}", "--overlap", f"--nodelist={node.id}",
            "--nodes=1", "--ntasks=1", self.python(node), "-c",
            "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])", timeout=30)
        if code != 0:
            raise OSError(f"node {node.id}: cannot pick a port: {err.strip()}")
        return int(out.strip().splitlines()[-1])

    def scancel(self, job_id: str) -> None:
        code, _out, err = self.commands("scancel", job_id, timeout=30)
        if code != 0 and "already completing or completed" not in err:
            log.warning("scancel %s: %s", job_id, err.strip())
        self.watcher.next_poll = 0.0

    def nodes(self) -> list[NodeInfo]:
        return [NodeInfo.from_row(r) for r in self.history.nodes(self.name)]

    def _remove(self, node: NodeInfo) -> None:
        job_id = node.info.get("slurm_job_id")
        if job_id:
            self.scancel(str(job_id))
        self.history.delete_node(self.name, node.id)

    def maintain(self) -> list[tuple[str, str]]:
        """Poll Slurm once for all jobs; cancel jobs no run needs; speak for agents Slurm killed."""
        self._sweep_once()
        for row in self.history.nodes(self.name):  # Slurm nodes are ours only while a run holds them
            if row["run_id"] is None and row["state"] == "idle":
                self.history.delete_node(self.name, row["id"])
        started: dict[str, dict[str, Any]] = {}
        for run in self.history.run_rows(status=ACTIVE, cluster=self.name):
            job_id = _job_of(run)
            if run["status"] != "Queued" and job_id:
                started[job_id] = run
                self.watcher.track(job_id)
        for run_id, job in list(self._pending.items()):
            row = self.history.run_row(run_id)
            if row is None or row["status"] != "Queued" or run_key(row) != job.key:
                del self._pending[run_id]
                self._released[job.job_id] = 0.0
        now = time.time()
        for job_id, since in list(self._released.items()):
            info = self.watcher.info(job_id)
            if job_id in started:
                continue
            if info is not None and not info.live and info.state != "UNKNOWN":
                del self._released[job_id]
                self.watcher.forget(job_id)
            elif now - since > RELEASE_GRACE_SECONDS:
                self.scancel(job_id)
                self._released[job_id] = now - RELEASE_GRACE_SECONDS + 2.0  # look again shortly
            else:
                self.watcher.track(job_id)
        self.watcher.poll()
        for job_id, run in started.items():
            info = self.watcher.info(job_id)
            if info is None or info.live or info.state == "UNKNOWN":
                continue
            if now - info.seen >= ENDED_GRACE_SECONDS:
                self._speak_for_agents(run, job_id, info.state, info.reason)
        return []

    def _speak_for_agents(self, run: dict[str, Any], job_id: str, state: str, reason: str) -> None:
        """Slurm ended the job: write status.json for each node whose agent could not."""
        key = run_key(run)
        canceled = bool(run.get("cancel_requested"))
        what = "is gone from squeue" if state == GONE else f"ended {state}"
        why = f" ({reason})" if reason and reason not in ("None", "") else ""
        for index, row in enumerate(run["nodes"]):
            node = NodeInfo(id=row["id"], address=row.get("address"), state="running",
                            info=row.get("info") or {})
            paths = RunPaths(self.node_root(node), key)
            transport = self.transport(node)
            if transport.exists(paths.status):
                continue
            message = f"Slurm job {job_id} {what}{why} before the agent on node {node.id} finished"
            tail = (transport.read_bytes(paths.agent_log) or b"").decode("utf-8", "replace").strip()
            if tail:
                message += f"; its log ends: {tail.splitlines()[-1][:300]}"
            status: dict[str, Any] = {"node_index": index, "exit_codes": {}, "files": {},
                                      "reason": message, "canceled": canceled, "timed_out": False,
                                      "ended": time.time(), "slurm_state": state}
            if not canceled:
                status["error"] = {"phase": "slurm", "message": message}
            transport.write_bytes(paths.status, json.dumps(status).encode())
            log.warning("run %s: %s", run["id"], message)

    def _sweep_once(self) -> None:
        """After an engine restart: adopt this workspace's jobs that runs still need, cancel the rest."""
        if self._swept:
            return
        self._swept = True
        code, out, err = self.commands("squeue", "--noheader", "--me", "--format=%i|%j|%T", timeout=30)
        if code != 0:
            log.warning("slurm cluster %s: cannot list jobs: %s", self.name, err.strip())
            return
        for line in out.splitlines():
            job_id, _, rest = line.strip().partition("|")
            name, _, state = rest.partition("|")
            if not name.startswith(self.prefix) or state not in ("PENDING", "RUNNING", "CONFIGURING",
                                                                 "SUSPENDED", "COMPLETING"):
                continue
            key = name[len(self.prefix):]
            base, _, attempt = key.rpartition(".")
            row = self.history.run_row(base if base and attempt.isdigit() else key)
            if row is not None and row["status"] in ACTIVE and run_key(row) == key:
                if row["status"] == "Queued":
                    self._pending[row["id"]] = _Job(job_id, key)
                self.watcher.track(job_id)
            elif state != "COMPLETING":
                self._released[job_id] = 0.0

    def close(self) -> None:
        """Jobs outlive the engine; only a cluster being deleted cancels what it still has queued."""
        row = self.history.cluster_row(self.name) if self.history is not None else {}
        if row is None or row.get("deleting"):
            for job_id in {j.job_id for j in self._pending.values()} | set(self._released):
                self.scancel(job_id)
            self._pending.clear()
            self._released.clear()
        if self._login is not None:
            self._login.close()
            self._login = None


def split_host(text: str) -> tuple[str, int]:
    """"host" or "host:port" (port 22 by default)."""
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return text, 22


def _job_of(run: dict[str, Any]) -> str | None:
    for row in run.get("nodes") or []:
        job_id = (row.get("info") or {}).get("slurm_job_id")
        if job_id:
            return str(job_id)
    value = run["properties"].get("slurm_job_id")
    return str(value) if value else None


def _no_path() -> Any:
    from pathlib import Path
    return Path("/nonexistent")


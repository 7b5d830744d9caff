"""The Slurm jobs of one cluster's runs: submitted for queued runs, let go of by ended ones.

One job per run attempt, named `<prefix><run key>` so an engine that restarts finds its jobs
again (`sweep_once`). A queued run's job is *pending* here until Slurm starts it and the batch
script records its nodes; a job whose run ended (or never needed it) is *released* and
scancel'ed if it is still alive after a grace period. Nothing here writes run state: what a
job's state means for its run is returned as an outcome (Pending, Refused) or node names.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...records import RunRow
from ..outcomes import Pending, Refused
from .commands import SlurmCommands
from .script import run_key
from .watch import NEVER_STARTS, UNREACHABLE, SlurmWatcher

if TYPE_CHECKING:
    from .backend import SlurmCompute

log = logging.getLogger("batchai_jupyter.engine")

RELEASE_GRACE_SECONDS = 10.0   # a released job still alive after this is scancel'ed
NODES_CHECK_SECONDS = 1.0      # how often a long-pending job's "nodes" file is looked for
FRESH_SECONDS = 5.0            # ... and every engine tick for this long after sbatch
ACTIVE = ("Queued", "Preparing", "Running", "Finalizing", "CancelRequested")
ADOPTABLE = ("PENDING", "RUNNING", "CONFIGURING", "SUSPENDED", "COMPLETING")


@dataclass
class Job:
    job_id: str
    key: str       # run id, or "<run id>.<attempt>" after a requeue (RunPaths' run folder name)
    checked: float = 0.0  # when the shared root was last asked whether the job started
    submitted: float = 0.0


def job_of(run: RunRow) -> str | None:
    """The Slurm job a run holds (from its nodes, else from its properties)."""
    for row in run.get("nodes") or []:
        job_id = (row.get("info") or {}).get("slurm_job_id")
        if job_id:
            return str(job_id)
    value = run["properties"].get("slurm_job_id")
    return str(value) if value else None


def note(run: RunRow, job_id: str, state: str, reason: str) -> dict[str, Any]:
    """Run properties that show the Slurm job and its state; {} when they did not change."""
    props = run["properties"]
    if props.get("slurm_job_id") == job_id and props.get("slurm_state") == state:
        return {}
    return {"slurm_job_id": job_id, "slurm_state": state,
            "slurm_reason": reason if reason and reason != "None" else None}


class SlurmJobs:
    """Job bookkeeping of one SlurmCompute (its commands, watcher, shared root and history)."""

    def __init__(self, owner: SlurmCompute):
        self.owner = owner
        self.pending: dict[str, Job] = {}     # queued run -> its submitted, not yet started job
        self.released: dict[str, float] = {}  # job id -> when its run let go of it
        self.swept = False

    @property
    def commands(self) -> SlurmCommands:
        return self.owner.commands

    @property
    def watcher(self) -> SlurmWatcher:
        return self.owner.watcher

    # -- queued runs -----------------------------------------------------------------------------
    def submit(self, run: RunRow, key: str, count: int) -> Job | Refused | None:
        """sbatch the run's script; None when Slurm cannot be reached now (try again)."""
        owner = self.owner
        path = f"{owner.job_dir(key)}/job.sh"
        try:
            transport = owner.transport()
            transport.write_bytes(path, owner.batch_script(run, key, count).encode(), 0o755)
        except OSError as exc:  # the shared root (or the login host) is not reachable now
            log.warning("run %s: cannot write %s (%s); trying again", run["id"], path, exc)
            return None
        code, out, err = self.commands("sbatch", "--parsable", path, timeout=60)
        if code == UNREACHABLE and owner.config.get("login_host"):
            log.warning("run %s: sbatch not sent (%s); trying again", run["id"], err.strip())
            return None
        if code != 0:
            return Refused(f"sbatch refused the job of run {run['id']} "
                           f"{self.commands.where}: {err.strip() or f'exit code {code}'}")
        job_id = out.strip().split(";")[0]
        with contextlib.suppress(OSError):  # for people looking at the folder; jobs are found by name
            transport.write_bytes(f"{owner.job_dir(key)}/job_id", job_id.encode())
        self.watcher.track(job_id)
        log.info("run %s: Slurm job %s submitted", run["id"], job_id)
        return Job(job_id, key, submitted=time.time())

    def progress(self, run: RunRow, job: Job, waiting: str) -> list[str] | Pending | Refused:
        """The job's nodes once Slurm started it; else why the run still waits, or cannot start."""
        self.watcher.poll()
        info = self.watcher.info(job.job_id)
        now = time.time()
        if info is not None and info.state == "PENDING" and now - job.checked < NODES_CHECK_SECONDS \
                and now - job.submitted > FRESH_SECONDS:
            return Pending(waiting)  # long pending: look at the shared root only now and then
        job.checked = now
        names = self.started_nodes(job)
        if names is not None:
            del self.pending[run["id"]]
            return names
        if info is None:
            return Pending(waiting)
        if info.state != "UNKNOWN" and not info.live:
            del self.pending[run["id"]]
            self.watcher.forget(job.job_id)
            why = f" ({info.reason})" if info.reason and info.reason != "None" else ""
            return Refused(f"Slurm job {job.job_id} ended {info.state}{why} before it started")
        if info.state == "PENDING" and info.reason in NEVER_STARTS \
                and now - info.reason_since >= float(self.owner.config.get("never_starts_seconds", 10)):
            del self.pending[run["id"]]
            self.scancel(job.job_id)
            return Refused(f"Slurm will never start job {job.job_id}: {info.reason} "
                           f"({NEVER_STARTS[info.reason]})")
        return Pending(waiting, note(run, job.job_id, info.state, info.reason))

    def started_nodes(self, job: Job) -> list[str] | None:
        """The node names the batch script recorded, or None while it has not run."""
        raw = self.owner.transport().read_bytes(f"{self.owner.job_dir(job.key)}/nodes")
        if raw is None:
            return None
        words = raw.decode().split()
        if len(words) < 2 or words[0] != job.job_id:
            return None  # left by an earlier job of the same run folder
        return words[1:]

    # -- jobs no run needs ---------------------------------------------------------------------------
    def let_go(self, run_id: str, job_ids: list[str]) -> None:
        """The run is over: its jobs may end (and are cancelled if they do not)."""
        for job_id in job_ids:
            self.released.setdefault(job_id, time.time())
        job = self.pending.pop(run_id, None)
        if job is not None:
            self.released[job.job_id] = 0.0  # never started for us: cancel at once

    def settle(self, started: set[str]) -> None:
        """Release jobs of runs no longer queued; cancel released jobs that outstay their grace."""
        history = self.owner.history
        for run_id, job in list(self.pending.items()):
            row = history.run_row(run_id)
            if row is None or row["status"] != "Queued" or run_key(row) != job.key:
                del self.pending[run_id]
                self.released[job.job_id] = 0.0
        now = time.time()
        for job_id, since in list(self.released.items()):
            info = self.watcher.info(job_id)
            if job_id in started:
                continue
            if info is not None and not info.live and info.state != "UNKNOWN":
                del self.released[job_id]
                self.watcher.forget(job_id)
            elif now - since > RELEASE_GRACE_SECONDS:
                self.scancel(job_id)
                self.released[job_id] = now - RELEASE_GRACE_SECONDS + 2.0  # look again shortly
            else:
                self.watcher.track(job_id)

    def sweep_once(self) -> None:
        """After an engine restart: adopt this workspace's jobs that runs still need, cancel the rest."""
        if self.swept:
            return
        self.swept = True
        owner = self.owner
        code, out, err = self.commands("squeue", "--noheader", "--me", "--format=%i|%j|%T", timeout=30)
        if code != 0:
            log.warning("slurm cluster %s: cannot list jobs: %s", owner.name, err.strip())
            return
        for line in out.splitlines():
            job_id, _, rest = line.strip().partition("|")
            name, _, state = rest.partition("|")
            if not name.startswith(owner.prefix) or state not in ADOPTABLE:
                continue
            key = name[len(owner.prefix):]
            base, _, attempt = key.rpartition(".")
            row = owner.history.run_row(base if base and attempt.isdigit() else key)
            if row is not None and row["status"] in ACTIVE and run_key(row) == key:
                if row["status"] == "Queued":
                    self.pending[row["id"]] = Job(job_id, key)
                self.watcher.track(job_id)
            elif state != "COMPLETING":
                self.released[job_id] = 0.0

    def scancel(self, job_id: str) -> None:
        code, _out, err = self.commands("scancel", job_id, timeout=30)
        if code != 0 and "already completing or completed" not in err:
            log.warning("scancel %s: %s", job_id, err.strip())
        self.watcher.next_poll = 0.0

    def cancel_all(self) -> None:
        """The cluster goes away: cancel every job it still has queued or let go of."""
        for job_id in {j.job_id for j in self.pending.values()} | set(self.released):
            self.scancel(job_id)
        self.pending.clear()
        self.released.clear()

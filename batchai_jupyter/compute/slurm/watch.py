"""The one batched, rate-limited status watcher of a slurm cluster.

Every question about job state is answered from one `squeue` call that lists all the
cluster's jobs at once; the call is repeated at most every `min_interval` seconds, and the
interval grows while nothing changes (a scheduler must not be polled once per job per tick).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .commands import UNREACHABLE, SlurmCommands

# squeue states in which the job's processes may still run (everything else is over)
LIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
                         "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING",
                         "STAGE_OUT", "RESV_DEL_HOLD", "STOPPED"})
# pending reasons that no amount of waiting fixes (the job asks more than the partition allows)
NEVER_STARTS = {
    "PartitionTimeLimit": "max_wall_clock_seconds plus 2 minutes is above the partition's time limit",
    "PartitionNodeLimit": "node_count is outside the partition's node limits",
    "BadConstraints": "the job's constraints cannot be met by any node",
    "AccountNotAllowed": "the account may not use the partition",
    "QOSNotAllowed": "the QOS may not use the partition",
}
GONE = "GONE"  # squeue does not know the job (any more)


@dataclass
class JobInfo:
    """What squeue last said about one job."""

    state: str
    nodes: str = ""      # hostlist expression, e.g. n[1-2]
    reason: str = ""
    seen: float = 0.0    # when this state was first seen
    reason_since: float = 0.0  # when this reason was first seen

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


class SlurmWatcher:
    """One squeue for all tracked jobs, at most every interval; backoff while nothing changes."""

    def __init__(self, commands: SlurmCommands, min_interval: float = 0.5,
                 max_interval: float = 5.0, factor: float = 1.5):
        self.commands = commands
        self.min_interval = min_interval
        self.max_interval = max(min_interval, max_interval)
        self.factor = factor
        self.interval = min_interval
        self.next_poll = 0.0
        self.jobs: dict[str, JobInfo] = {}
        self.calls = 0
        self.last_error: str | None = None

    def track(self, job_id: str) -> None:
        """Watch a job; a new job makes the next poll come soon."""
        if job_id not in self.jobs:
            self.jobs[job_id] = JobInfo(state="UNKNOWN", seen=time.time())
            self.interval = self.min_interval
            self.next_poll = min(self.next_poll, time.time() + self.min_interval)

    def forget(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    def info(self, job_id: str) -> JobInfo | None:
        return self.jobs.get(job_id)

    def poll(self, force: bool = False) -> bool:
        """Refresh every job's state with one squeue call when due; True if it ran."""
        now = time.time()
        if not self.jobs or (not force and now < self.next_poll):
            return False
        ids = sorted(self.jobs, key=lambda j: int(j) if j.isdigit() else 0)
        self.calls += 1
        code, out, err = self.commands("squeue", "--noheader", "--states=all",
                                       "--format=%i|%T|%N|%r", f"--jobs={','.join(ids)}",
                                       timeout=30)
        changed = False
        if code != 0 and "Invalid job id" not in err:
            self.last_error = err.strip() or f"squeue exited with code {code}"
            self._schedule(changed=False)
            return True
        self.last_error = None
        seen: dict[str, tuple[str, str, str]] = {}
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) >= 4:
                seen[parts[0]] = (parts[1], parts[2], parts[3])
        for job_id, old in self.jobs.items():
            state, nodes, reason = seen.get(job_id, (GONE, old.nodes, old.reason))
            if state != old.state:
                changed = True
                self.jobs[job_id] = JobInfo(state, nodes, reason, seen=now, reason_since=now)
            else:
                if reason != old.reason:
                    old.reason, old.reason_since = reason, now
                old.nodes = nodes or old.nodes
        self._schedule(changed)
        return True

    def _schedule(self, changed: bool) -> None:
        if changed:
            self.interval = self.min_interval
        else:
            self.interval = min(self.max_interval, self.interval * self.factor)
        self.next_poll = time.time() + self.interval


__all__ = ["GONE", "LIVE_STATES", "NEVER_STARTS", "UNREACHABLE", "JobInfo",
           "SlurmWatcher"]

"""RunPaths: the one owner of a run's on-node folder layout."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath


@dataclass(frozen=True)
class RunPaths:
    """Where everything of one run lives on one node (POSIX paths: nodes are Linux)."""

    node_root: str
    run_id: str

    def _p(self, *parts: str) -> str:
        return str(PurePosixPath(self.node_root, "runs", self.run_id, *parts))

    @property
    def run_dir(self) -> str:
        return self._p()

    @property
    def manifest(self) -> str:       # run.json: what the agent runs (mode 0600)
        return self._p("run.json")

    @property
    def wd(self) -> str:             # the materialised snapshot: the job's working directory
        return self._p("wd")

    @property
    def outputs(self) -> str:
        return self._p("wd", "outputs")

    @property
    def logs(self) -> str:
        return self._p("wd", "logs")

    @property
    def stdouterr(self) -> str:      # AZ_BATCHAI_STDOUTERR_DIR
        return self._p("stdouterr")

    @property
    def temp(self) -> str:           # AZ_BATCHAI_JOB_TEMP
        return self._p("temp")

    @property
    def mounts(self) -> str:         # AZ_BATCHAI_JOB_MOUNT_ROOT
        return self._p("mounts")

    @property
    def inputs(self) -> str:         # downloaded inputs
        return self._p("inputs")

    @property
    def staged_outputs(self) -> str:  # outputs bound for a datastore
        return self._p("output-dirs")

    @property
    def metrics(self) -> str:        # metrics.jsonl appended by Run.get_context().log
        return self._p("metrics.jsonl")

    @property
    def artifacts(self) -> str:      # images and tables logged by the job
        return self._p("artifacts")

    @property
    def started(self) -> str:        # created with O_EXCL by the one agent that runs
        return self._p("agent.started")

    @property
    def state(self) -> str:          # preparing | running | finalizing
        return self._p("state")

    @property
    def heartbeat(self) -> str:
        return self._p("heartbeat")

    @property
    def pids(self) -> str:           # process groups of the job's processes
        return self._p("pids.json")

    @property
    def cancel(self) -> str:         # its presence asks the agent to stop the job
        return self._p("cancel")

    @property
    def status(self) -> str:         # status.json: written once, at the very end
        return self._p("status.json")

    @property
    def agent_log(self) -> str:
        return self._p("agent.log")


def objects_path(objects_dir: str, digest: str) -> str:
    return str(PurePosixPath(objects_dir, digest[:2], digest[2:]))

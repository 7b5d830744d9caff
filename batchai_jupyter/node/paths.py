"""RunPaths: the one owner of a run's on-node folder layout (and the run key that names it)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import PurePosixPath

MANIFEST_FILE = "run.json"
MCA_FILE = "mpi-mca.json"       # in node_root: the cluster's mpi_mca= settings, written by the backend
RANK_ENV_FILE = "mpi-rank.json"  # in the run folder: what an MPI rank on this node runs
HOSTFILE = "hostfile"           # in the run folder: the OpenMPI hostfile (AZ_BATCHAI_MPI_HOST_FILE)
TREES = "trees"                 # in node_root: one read-only materialised tree per snapshot


def run_key(run_id: str, attempt: int = 0) -> str:
    """The name of a run's folder on a node: its id, or "<id>.<attempt>" after a requeue."""
    return run_id if attempt == 0 else f"{run_id}.{attempt}"


def trees_path(node_root: str) -> str:
    """Where a node keeps its materialised snapshot trees (node/tree.py)."""
    return str(PurePosixPath(node_root, TREES))


def parse_run_key(key: str) -> tuple[str, int]:
    """run_key's inverse: "<id>" -> (id, 0), "<id>.<n>" -> (id, n)."""
    head, _, tail = key.rpartition(".")
    if head and tail.isdigit():
        return head, int(tail)
    return key, 0


def mca_path(node_root: str) -> str:
    """Where a node's mpirun finds the cluster's OpenMPI settings (JSON {param: value})."""
    return str(PurePosixPath(node_root, MCA_FILE))


@dataclass(frozen=True)
class RunPaths:
    """Where everything of one run lives on one node (POSIX paths: nodes are Linux).

    `key` is the run folder's name (see run_key): the run id, suffixed on a requeued attempt.
    """

    node_root: str
    key: str

    @classmethod
    def for_attempt(cls, node_root: str, run_id: str, attempt: int = 0) -> RunPaths:
        return cls(node_root, run_key(run_id, attempt))

    @classmethod
    def of_run_dir(cls, run_dir: str) -> RunPaths:
        """The paths of the run whose folder is run_dir (<node_root>/runs/<key>)."""
        p = PurePosixPath(run_dir)
        return cls(str(p.parent.parent), p.name)

    @functools.cached_property
    def _base(self) -> str:
        return str(PurePosixPath(self.node_root, "runs", self.key))

    def _p(self, *parts: str) -> str:
        """A path in the run folder; parts are plain names (the engine asks for these every pass)."""
        return "/".join((self._base, *parts)) if parts else self._base

    @property
    def run_dir(self) -> str:
        return self._p()

    @property
    def manifest(self) -> str:       # run.json: what the agent runs (mode 0600)
        return self._p(MANIFEST_FILE)

    @property
    def snapshot_listing(self) -> str:  # snapshot.json: the snapshot's files and links, as stored
        return self._p("snapshot.json")

    @property
    def wd(self) -> str:             # the materialised snapshot: the job's working directory
        return self._p("wd")

    @property
    def view(self) -> str:           # the writable layer of the run's view of its snapshot tree
        return self._p("view")

    @property
    def view_mode(self) -> str:      # how wd was made: overlay | reflink | copy
        return self._p("view.mode")

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
    def mount_root(self) -> str:     # AZ_BATCHAI_MOUNT_ROOT: the node's, shared by its runs
        return str(PurePosixPath(self.node_root, "mounts"))

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

    # -- MPI ------------------------------------------------------------------------------------
    @property
    def hostfile(self) -> str:       # AZ_BATCHAI_MPI_HOST_FILE
        return self._p(HOSTFILE)

    @property
    def rank_env(self) -> str:       # mpi-rank.json: its presence says "this node is ready"
        return self._p(RANK_ENV_FILE)

    @property
    def ranks(self) -> str:          # ranks/<rank>: one flock-held marker per MPI rank on this node
        return self._p("ranks")

    @property
    def mca_file(self) -> str:       # the node's mpi-mca.json (see mca_path)
        return mca_path(self.node_root)

    # -- the cluster's shared folder ----------------------------------------------------------------
    @staticmethod
    def shared_job_dir(shared_dir: str, run_id: str) -> str:
        """A run's folder on the cluster's shared root (keyed by run id: every attempt shares it)."""
        return str(PurePosixPath(shared_dir, "jobs", run_id))

    def shared_temp(self, shared_dir: str | None, run_id: str) -> str:
        """AZ_BATCHAI_SHARED_JOB_TEMP: on the shared root if the cluster has one, else job temp."""
        if shared_dir:
            return str(PurePosixPath(self.shared_job_dir(shared_dir, run_id), "temp"))
        return self.temp


def objects_path(objects_dir: str, digest: str) -> str:
    return str(PurePosixPath(objects_dir, digest[:2], digest[2:]))

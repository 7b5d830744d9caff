"""What a node starts, as data: ProcessPlan, the job's argv and environment, and log file names.

Everything here is a pure function of its arguments: no file, no PATH lookup, no os.environ.
The agent gathers what the planners need (PlanInputs) and writes the files they ask for, so the
engine (for names) and the agent (for processes) agree without talking to each other, and the
plans can be checked argument by argument.
"""
from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import SpecError
from ..spec import JobSpec
from .manifest import RunManifest
from .paths import RunPaths


@dataclass
class ProcessPlan:
    """One process the agent starts."""

    name: str                 # unique on the node: "0-0", "0-1", "wk-0", "ps-0", "mpirun", "job_prep"
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stdout: str = "stdout.txt"
    stderr: str = "stderr.txt"
    # started as the agent even when the job has an account (a container helper that hands the
    # job to the container, which switches to the account itself)
    as_agent: bool = False


@dataclass(frozen=True)
class PlannedFile:
    """A file the agent writes (atomically, in plan order) before it starts the processes."""

    path: str
    text: str
    mode: int = 0o666  # as open(path, "w") creates it: the umask applies


@dataclass
class NodePlan:
    """Everything a node does to start its share of a run."""

    processes: list[ProcessPlan] = field(default_factory=list)
    files: list[PlannedFile] = field(default_factory=list)
    # ranks another node's mpirun starts on this node: the agent stages outputs once they ended
    await_ranks: int = 0


@dataclass(frozen=True)
class PlanInputs:
    """What the planners may know about the node; the agent gathers it (agent.plan_inputs)."""

    manifest: RunManifest
    env: Mapping[str, str]          # the job's environment on this node (job_env + staging)
    mpirun: str | None = None       # shutil.which("mpirun") on the job's PATH (MPI runs only)
    as_root: bool = False           # the agent runs as uid 0 (mpirun needs --allow-run-as-root)
    cpu_count: int = 1              # the CPUs the node's agent may use (its affinity)
    mca: Mapping[str, str] = field(default_factory=dict)  # the cluster's mpi_mca= (mpi-mca.json)

    @property
    def spec(self) -> JobSpec:
        return self.manifest.spec

    @property
    def paths(self) -> RunPaths:
        return self.manifest.paths


# -- log names -------------------------------------------------------------------------------------
def _as_spec(spec: JobSpec | Mapping[str, Any]) -> JobSpec:
    return spec if isinstance(spec, JobSpec) else JobSpec.from_dict(spec)


def log_names(spec: JobSpec, node_index: int, local_rank: int) -> tuple[str, str]:
    """stdout.txt for a single process, stdout-<node>-<rank>.txt when there are several."""
    if spec.process_count() == 1 or spec.master_only:
        return "stdout.txt", "stderr.txt"
    return f"stdout-{node_index}-{local_rank}.txt", f"stderr-{node_index}-{local_rank}.txt"


def main_log_name(spec: JobSpec | Mapping[str, Any]) -> str:
    """The file wait_for_completion(show_output=True) streams: the first process's stdout."""
    spec = _as_spec(spec)
    if spec.distribution == "tensorflow":
        return "stdout-wk-0.txt"
    if spec.distribution == "mpi":
        return "stdout.txt"  # the one mpirun on node 0 gathers every rank's output
    return log_names(spec, 0, 0)[0]


# -- argv --------------------------------------------------------------------------------------------
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(value: str, env: Mapping[str, str]) -> str:
    """$VAR / ${VAR} from the process's own environment (Batch AI job.json arguments use it)."""
    return _VAR.sub(lambda m: env.get(m.group(1) or m.group(2), m.group(0)), value)


def job_argv(spec: JobSpec, env: Mapping[str, str], python: str,
             arguments: Sequence[str] | None = None) -> list[str]:
    """The command a process runs: a shell line, or the interpreter with script and arguments."""
    if spec.command:
        return ["/bin/bash", "-c", spec.command]
    if spec.script is None:
        raise SpecError("command", "give exactly one of command= or script=",
                        "command='python train.py' or script='train.py'")
    interpreter = spec.python_interpreter or python
    args = spec.arguments if arguments is None else arguments
    return [expand(interpreter, env), expand(spec.script, env), *(expand(str(a), env) for a in args)]


def gpu_split(gpu_ids: Sequence[str], per_process: int, local_rank: int, processes: int) -> str | None:
    """CUDA_VISIBLE_DEVICES for one process: its own slice of the node's GPUs."""
    if not gpu_ids:
        return None
    if per_process <= 0:
        per_process = max(1, len(gpu_ids) // max(1, processes))
    chosen = gpu_ids[local_rank * per_process:(local_rank + 1) * per_process]
    return ",".join(chosen) if chosen else ""


def describe(plan: ProcessPlan) -> str:
    return " ".join(shlex.quote(a) for a in plan.argv)


# -- environment -------------------------------------------------------------------------------------
#: first on a Python job's path: flushes its stdout/stderr on a timer (see its docstring)
AUTOFLUSH_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "autoflush")
FLUSH_SECONDS = "0.05"


def job_env(manifest: RunManifest, node_env: Mapping[str, str]) -> dict[str, str]:
    """The environment every process of the run on this node starts from.

    node_env is the agent's own environment; then the spec's variables, the secrets, and the
    Batch AI / batchai variables, which always win.
    """
    spec, p = manifest.spec, manifest.paths
    env = dict(node_env)
    env.pop("PYTHONUNBUFFERED", None)  # the node's, not the job's: its prints are flushed on a timer
    env.update({k: str(v) for k, v in spec.environment_variables.items()})
    env.update(manifest.secrets)
    env.update({
        # buffered writes, flushed every BATCHAI_FLUSH_SECONDS by autoflush/sitecustomize.py
        "PYTHONPATH": os.pathsep.join(p for p in (AUTOFLUSH_DIR, env.get("PYTHONPATH")) if p),
        "BATCHAI_FLUSH_SECONDS": env.get("BATCHAI_FLUSH_SECONDS", FLUSH_SECONDS),
        "PATH": os.path.dirname(manifest.python) + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
        "BATCHAI_RUN_ID": manifest.run_id,
        "BATCHAI_EXPERIMENT": manifest.experiment,
        "BATCHAI_NODE_INDEX": str(manifest.node_index),
        "BATCHAI_METRICS_FILE": p.metrics,
        "BATCHAI_ARTIFACTS_DIR": p.artifacts,
        "AZ_BATCHAI_JOB_MOUNT_ROOT": p.mounts,
        "AZ_BATCHAI_MOUNT_ROOT": p.mount_root,
        "AZ_BATCHAI_JOB_TEMP": p.temp,
        "AZ_BATCHAI_SHARED_JOB_TEMP": p.shared_temp(manifest.shared_dir, manifest.run_id),
        "AZ_BATCHAI_STDOUTERR_DIR": p.stdouterr,
        "AZ_BATCHAI_NUM_GPUS": str(len(manifest.node.gpu_ids)),
        "AZ_BATCHAI_NODE_COUNT": str(len(manifest.nodes)),
        **batchai_cluster_env(manifest),
    })
    return env


THREADS_VARIABLE = "OMP_NUM_THREADS"


def shared_host_threads(inputs: PlanInputs, per_node: int) -> dict[str, str]:
    """OMP_NUM_THREADS for a run's processes on a host that starts more than one of them.

    OpenMP and the BLAS libraries numpy, scikit-learn and torch load start one thread per CPU in
    every process (and spin them at import): k processes of one run on a host of c CPUs then
    fight over c*k threads. Each gets c // k (at least 1), as torchrun does for its workers; a
    host running one process of the run, or an OMP_NUM_THREADS the job or node already sets, is
    left alone. Several nodes of a local cluster share one host: their processes are counted
    together (nodes at the same address).
    """
    address = inputs.manifest.node.address
    on_host = per_node * sum(1 for n in inputs.manifest.nodes if n.address == address)
    if on_host <= 1 or THREADS_VARIABLE in inputs.env or THREADS_VARIABLE in inputs.spec.environment_variables:
        return {}
    return {THREADS_VARIABLE: str(max(1, inputs.cpu_count // on_host))}


DEFAULT_PYTORCH_BACKEND = "gloo"  # Batch AI's PyTorch recipes' backend when the spec names none


def batchai_cluster_env(manifest: RunManifest) -> dict[str, str]:
    """The Batch AI / Azure Batch variables about the run's nodes, the same on every node.

    AZ_BATCH_HOST_LIST has one address per node (in node order), AZ_BATCH_MASTER_NODE and
    AZ_BATCHAI_PYTORCH_INIT_METHOD name node 0's address and the run's master port (as torch's
    MASTER_ADDR/MASTER_PORT do), AZ_BATCHAI_PYTORCH_BACKEND is the spec's communication_backend.
    """
    p, master = manifest.paths, manifest.nodes[0].address
    return {
        "AZ_BATCHAI_JOB_TEMP_DIR": p.temp,
        "AZ_BATCHAI_MPI_HOST_FILE": p.hostfile,
        "AZ_BATCH_HOST_LIST": ",".join(n.address for n in manifest.nodes),
        "AZ_BATCH_MASTER_NODE": f"{master}:{manifest.master_port}",
        "AZ_BATCHAI_PYTORCH_INIT_METHOD": f"tcp://{master}:{manifest.master_port}",
        "AZ_BATCHAI_PYTORCH_BACKEND": str(manifest.spec.communication_backend or DEFAULT_PYTORCH_BACKEND),
    }


def job_prep_plan(manifest: RunManifest, env: Mapping[str, str]) -> ProcessPlan:
    """The spec's job_preparation command line, before any process of the job (once per node:
    its AZ_BATCHAI_TASK_INDEX is the node's index)."""
    suffix = f"-{manifest.node_index}" if manifest.multi_node else ""
    return ProcessPlan(name="job_prep", argv=["/bin/bash", "-c", str(manifest.spec.job_preparation)],
                       env={**env, "AZ_BATCHAI_TASK_INDEX": str(manifest.node_index)},
                       stdout=f"stdout-job_prep{suffix}.txt",
                       stderr=f"stderr-job_prep{suffix}.txt")

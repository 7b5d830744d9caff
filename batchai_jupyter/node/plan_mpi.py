"""MPI distribution: node 0 starts one `mpirun` across every node of the run.

It runs the way Horovod jobs ran on Batch AI: an OpenMPI hostfile at AZ_BATCHAI_MPI_HOST_FILE
with process_count_per_node slots per node. Each rank goes through `batchai_jupyter.node.mpi_rank`,
which waits until its own node's agent has materialised the snapshot and left its RankEnv, then
runs the job in that node's working folder with that node's environment, so a rank on node 2
logs metrics and outputs on node 2 like any other process. Pure: see process.py.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import SpecError
from .manifest import ManifestNode
from .process import NodePlan, PlanInputs, PlannedFile, ProcessPlan, job_argv, shared_host_threads

# variables of the agent's environment that are the node's own, not mpirun's (set per node)
_NODE_KEYS = ("AZ_BATCH_", "AZ_BATCHAI_", "BATCHAI_", "CUDA_VISIBLE_DEVICES", "PYTHONUNBUFFERED", "PYTHONPATH")


@dataclass(frozen=True)
class RankEnv:
    """What a rank on a node needs (mpi-rank.json): the node's own variables, folder and command."""

    cwd: str
    env: dict[str, str]
    argv: list[str]
    gpu_ids: list[str] = field(default_factory=list)
    gpus_per_process: int = 0
    per_node: int = 1
    expand: bool = False  # argv's $VAR / ${VAR} are expanded by each rank, in its own environment

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> RankEnv:
        data: dict[str, Any] = json.loads(text)
        return cls(cwd=str(data["cwd"]), env={str(k): str(v) for k, v in data["env"].items()},
                   argv=[str(a) for a in data["argv"]], gpu_ids=[str(g) for g in data.get("gpu_ids", [])],
                   gpus_per_process=int(data.get("gpus_per_process") or 0),
                   per_node=int(data.get("per_node") or 1), expand=bool(data.get("expand", False)))


def hostfile_text(nodes: Sequence[ManifestNode], slots: int) -> str:
    """One line per distinct address; nodes that share an address (local folders) add slots."""
    counts: dict[str, int] = {}
    for node in nodes:
        counts[node.address] = counts.get(node.address, 0) + slots
    return "".join(f"{addr} slots={n}\n" for addr, n in counts.items())


def rank_env(inputs: PlanInputs) -> RankEnv:
    """This node's RankEnv: its variables (not secrets: mpirun carries those), folder and command."""
    manifest, spec, paths = inputs.manifest, inputs.spec, inputs.paths
    env = {k: v for k, v in inputs.env.items() if k.startswith(_NODE_KEYS)}
    env.update({k: str(v) for k, v in spec.environment_variables.items()})
    env["PATH"] = inputs.env.get("PATH", "")
    env.update(shared_host_threads(inputs, spec.process_count_per_node))
    env["AZ_BATCHAI_MPI_HOST_FILE"] = paths.hostfile
    # the arguments as written: each rank expands them with its own AZ_BATCHAI_TASK_INDEX
    return RankEnv(cwd=paths.wd, env=env, argv=job_argv(spec, {}, manifest.python),
                   gpu_ids=list(manifest.node.gpu_ids), gpus_per_process=spec.gpus_per_process or 0,
                   per_node=spec.process_count_per_node, expand=not spec.command)


def mca_args(mca: Mapping[str, str]) -> list[str]:
    """The cluster's OpenMPI settings (mpi_mca=, e.g. plm_rsh_agent) as --mca k v, sorted."""
    out: list[str] = []
    for key, value in sorted(mca.items()):
        out += ["--mca", str(key), str(value)]
    return out


def plan_mpi(inputs: PlanInputs) -> NodePlan:
    """Every node leaves its hostfile and RankEnv (its presence says "ready"); node 0 runs mpirun."""
    manifest, spec, paths = inputs.manifest, inputs.spec, inputs.paths
    nodes = manifest.nodes
    per_node = spec.process_count_per_node
    files = [PlannedFile(paths.hostfile, hostfile_text(nodes, per_node)),
             PlannedFile(paths.rank_env, rank_env(inputs).to_json(), 0o600)]
    if manifest.node_index != 0:
        # node 0's mpirun starts this node's ranks: the agent waits for them before staging out
        return NodePlan(files=files, await_ranks=per_node)
    if inputs.mpirun is None:
        raise SpecError("distribution", f"mpirun not found on node {nodes[0].id} "
                        f"({nodes[0].address}); PATH={inputs.env.get('PATH')}",
                        ["install OpenMPI (mpirun) on every node", "distribution='pytorch'"])
    argv = [inputs.mpirun, "--hostfile", paths.hostfile]
    if inputs.as_root:
        argv.append("--allow-run-as-root")
    if len({n.address for n in nodes}) < len(nodes) or per_node > inputs.cpu_count:
        argv.append("--oversubscribe")
    argv.extend(mca_args(inputs.mca))
    for name in spec.secrets:  # never written on the other nodes: mpirun carries them
        argv.extend(["-x", str(name)])
    # one app context per node: its ranks start in that node's own run folder
    for i, node in enumerate(nodes):
        if i:
            argv.append(":")
        argv.extend(["-np", str(per_node), "--host", f"{node.address}:{per_node * _dup(nodes, node)}",
                     manifest.python, "-m", "batchai_jupyter.node.mpi_rank", manifest.paths_of(node).run_dir])
    # inside a Slurm allocation mpirun would only accept Slurm's own node names and start its
    # daemons with srun, outside our agents; the hostfile and the cluster's mpi_mca rule instead
    env = {k: v for k, v in inputs.env.items() if not k.startswith("SLURM_")}
    env["AZ_BATCHAI_MPI_HOST_FILE"] = paths.hostfile
    env["AZ_BATCHAI_TASK_INDEX"] = "0"
    return NodePlan(processes=[ProcessPlan(name="mpirun", argv=argv, env=env, stdout="stdout.txt",
                                           stderr="stderr.txt")], files=files)


def _dup(nodes: Sequence[ManifestNode], node: ManifestNode) -> int:
    return sum(1 for n in nodes if n.address == node.address)

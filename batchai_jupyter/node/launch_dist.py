"""MPI and TensorFlow distribution: the processes a node starts for them.

MPI runs the way Horovod jobs ran on Batch AI: node 0 starts one `mpirun` across every node of
the run (an OpenMPI hostfile at AZ_BATCHAI_MPI_HOST_FILE, process_count_per_node slots each).
Each rank goes through `batchai_jupyter.node.mpi_rank`, which waits until its own node's agent has
materialised the snapshot and then runs the job in that node's working folder with that node's
environment, so a rank on node 2 logs metrics and outputs on node 2 like any other process.

TensorFlow starts parameter_server_count ps tasks and worker_count workers spread over the
nodes' slots, with the Batch AI variables and TF_CONFIG.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

from ..errors import SpecError
from .launch import ProcessPlan, gpu_split, job_argv
from .paths import RunPaths

RANK_ENV_FILE = "mpi-rank.json"
MCA_FILE = "mpi-mca.json"  # written into node_root by the backend from the cluster's mpi_mca=
# variables of the agent's environment that are the node's own, not mpirun's (set per node)
_NODE_KEYS = ("AZ_BATCHAI_", "BATCHAI_", "CUDA_VISIBLE_DEVICES", "PYTHONUNBUFFERED")


def run_paths(job: dict[str, Any]) -> RunPaths:
    return RunPaths(job["node_root"], job.get("run_key") or job["run_id"])


def plan_distributed(job: dict[str, Any], base_env: dict[str, str], python: str) -> list[ProcessPlan]:
    dist = job["spec"].get("distribution")
    if dist == "mpi":
        return plan_mpi(job, base_env, python)
    if dist == "tensorflow":
        return plan_tensorflow(job, base_env, python)
    raise SpecError("distribution", f"unknown value {dist!r}", ["None", "pytorch", "mpi", "tensorflow"])


# -- MPI ---------------------------------------------------------------------------------------
def hostfile_text(nodes: list[dict[str, Any]], slots: int) -> str:
    """One line per distinct address; nodes that share an address (local folders) add slots."""
    counts: dict[str, int] = {}
    for node in nodes:
        counts[str(node["address"])] = counts.get(str(node["address"]), 0) + slots
    return "".join(f"{addr} slots={n}\n" for addr, n in counts.items())


def rank_env(job: dict[str, Any], base_env: dict[str, str], python: str) -> dict[str, Any]:
    """What a rank on this node needs: the node's own variables, folder and command."""
    spec = job["spec"]
    node = job["nodes"][int(job["node_index"])]
    env = {k: v for k, v in base_env.items() if k.startswith(_NODE_KEYS)}
    env.update({k: str(v) for k, v in spec.get("environment_variables", {}).items()})
    env["PATH"] = base_env.get("PATH", "")
    env["AZ_BATCHAI_MPI_HOST_FILE"] = run_paths(job).run_dir + "/hostfile"
    return {"cwd": run_paths(job).wd, "env": env, "argv": job_argv(spec, base_env, python),
            "gpu_ids": [str(g) for g in node.get("gpu_ids", [])],
            "gpus_per_process": int(spec.get("gpus_per_process", 0) or 0),
            "per_node": int(spec.get("process_count_per_node", 1))}


def plan_mpi(job: dict[str, Any], base_env: dict[str, str], python: str) -> list[ProcessPlan]:
    spec = job["spec"]
    nodes = job["nodes"]
    node_index = int(job["node_index"])
    paths = run_paths(job)
    per_node = int(spec.get("process_count_per_node", 1))
    hostfile = f"{paths.run_dir}/hostfile"
    with open(hostfile, "w") as fh:
        fh.write(hostfile_text(nodes, per_node))
    # every node (node 0 too) leaves its rank environment; its presence says "ready"
    tmp = f"{paths.run_dir}/{RANK_ENV_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(rank_env(job, base_env, python), fh)
    os.replace(tmp, f"{paths.run_dir}/{RANK_ENV_FILE}")
    if node_index != 0:
        return []  # node 0's mpirun starts this node's ranks
    mpirun = shutil.which("mpirun", path=base_env.get("PATH"))
    if mpirun is None:
        raise SpecError("distribution", f"mpirun not found on node {nodes[0]['id']} "
                        f"({nodes[0]['address']}); PATH={base_env.get('PATH')}",
                        ["install OpenMPI (mpirun) on every node", "distribution='pytorch'"])
    argv = [mpirun, "--hostfile", hostfile]
    if os.geteuid() == 0:
        argv.append("--allow-run-as-root")
    if len({str(n["address"]) for n in nodes}) < len(nodes) or per_node > (os.cpu_count() or 1):
        argv.append("--oversubscribe")
    argv.extend(_cluster_mca(job["node_root"]))
    for name in spec.get("secrets") or []:  # never written on the other nodes: mpirun carries them
        argv.extend(["-x", str(name)])
    # one app context per node: its ranks start in that node's own run folder
    contexts = []
    for node in nodes:
        run_dir = RunPaths(node.get("root") or job["node_root"], job.get("run_key") or job["run_id"]).run_dir
        contexts.append(["-np", str(per_node), "--host", f"{node['address']}:{per_node * _dup(nodes, node)}",
                         python, "-m", "batchai_jupyter.node.mpi_rank", run_dir])
    for i, ctx in enumerate(contexts):
        if i:
            argv.append(":")
        argv.extend(ctx)
    # inside a Slurm allocation mpirun would only accept Slurm's own node names and start its
    # daemons with srun, outside our agents; the hostfile and the cluster's mpi_mca rule instead
    env = {k: v for k, v in base_env.items() if not k.startswith("SLURM_")}
    env["AZ_BATCHAI_MPI_HOST_FILE"] = hostfile
    env["AZ_BATCHAI_TASK_INDEX"] = "0"
    return [ProcessPlan(name="mpirun", argv=argv, env=env, stdout="stdout.txt", stderr="stderr.txt")]


def _cluster_mca(node_root: str) -> list[str]:
    """OpenMPI settings the cluster gave the node (mpi_mca=, e.g. plm_rsh_agent), as --mca k v."""
    try:
        with open(os.path.join(node_root, MCA_FILE)) as fh:
            params = json.load(fh)
    except (FileNotFoundError, ValueError):
        return []
    out: list[str] = []
    for key, value in sorted(params.items()):
        out += ["--mca", str(key), str(value)]
    return out


def _dup(nodes: list[dict[str, Any]], node: dict[str, Any]) -> int:
    return sum(1 for n in nodes if str(n["address"]) == str(node["address"]))


# -- TensorFlow ----------------------------------------------------------------------------------
def tf_layout(spec: dict[str, Any], nodes: list[dict[str, Any]], base_port: int
              ) -> list[dict[str, Any]]:
    """Every task: type, index, node index and host:port. Workers first, round-robin over nodes."""
    per_node = int(spec.get("process_count_per_node", 1))
    workers = int(spec.get("worker_count") or len(nodes))
    ps = int(spec.get("parameter_server_count") or 0)
    slots = len(nodes) * per_node
    if workers + ps > slots:
        raise SpecError("worker_count", f"worker_count={workers} + parameter_server_count={ps} "
                        f"is more than the {slots} process slots (node_count={len(nodes)} x "
                        f"process_count_per_node={per_node})", f"worker_count + ps <= {slots}")
    tasks = []
    for i in range(workers + ps):
        kind, index = ("worker", i) if i < workers else ("ps", i - workers)
        node_index = i % len(nodes)
        tasks.append({"type": kind, "index": index, "node": node_index,
                      "local": i // len(nodes),
                      "host": f"{nodes[node_index]['address']}:{base_port + 1 + i}"})
    return tasks


def plan_tensorflow(job: dict[str, Any], base_env: dict[str, str], python: str) -> list[ProcessPlan]:
    spec = job["spec"]
    nodes = job["nodes"]
    node_index = int(job["node_index"])
    tasks = tf_layout(spec, nodes, int(job["master_port"]))
    ps_hosts = [t["host"] for t in tasks if t["type"] == "ps"]
    worker_hosts = [t["host"] for t in tasks if t["type"] == "worker"]
    mine = [t for t in tasks if t["node"] == node_index]
    gpu_ids = [str(g) for g in nodes[node_index].get("gpu_ids", [])]
    tf_args = spec.get("tensorflow_arguments") or {}
    plans = []
    for task in mine:
        env = dict(base_env)
        task_type = "ps" if task["type"] == "ps" else ("master" if task["index"] == 0 else "worker")
        env.update({
            "AZ_BATCHAI_PS_HOSTS": ",".join(ps_hosts),
            "AZ_BATCHAI_WORKER_HOSTS": ",".join(worker_hosts),
            "AZ_BATCHAI_TASK_INDEX": str(task["index"]),
            "AZ_BATCHAI_TASK_TYPE": task_type,
            "TF_CONFIG": json.dumps({"cluster": {"ps": ps_hosts, "worker": worker_hosts},
                                     "task": {"type": task["type"], "index": task["index"]},
                                     "environment": "cloud"}),
        })
        visible = gpu_split(gpu_ids, int(spec.get("gpus_per_process", 0) or 0), task["local"], len(mine))
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        args = tf_args.get(task_type)
        if args is None and task_type == "master":
            args = tf_args.get("worker")
        short = "ps" if task["type"] == "ps" else "wk"
        plans.append(ProcessPlan(name=f"{short}-{task['index']}", argv=job_argv(spec, env, python, args),
                                 env=env, stdout=f"stdout-{short}-{task['index']}.txt",
                                 stderr=f"stderr-{short}-{task['index']}.txt"))
    return plans

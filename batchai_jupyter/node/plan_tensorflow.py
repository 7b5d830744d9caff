"""TensorFlow distribution: parameter_server_count ps tasks and worker_count workers.

The tasks are spread over the nodes' process slots (workers first, round-robin over nodes), each
with the Batch AI variables (AZ_BATCHAI_PS_HOSTS, _WORKER_HOSTS, _TASK_INDEX, _TASK_TYPE) and
TF_CONFIG. Pure: see process.py.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import SpecError
from ..spec import JobSpec
from .manifest import ManifestNode
from .process import NodePlan, PlanInputs, ProcessPlan, gpu_split, job_argv


@dataclass(frozen=True)
class TfTask:
    """One TensorFlow task of the run."""

    type: str    # "worker" | "ps"
    index: int   # within its type
    node: int    # the index of the node it runs on
    local: int   # its slot on that node
    host: str    # address:port of its server

    @property
    def task_type(self) -> str:
        """AZ_BATCHAI_TASK_TYPE: worker 0 is Batch AI's "master"."""
        return "ps" if self.type == "ps" else ("master" if self.index == 0 else "worker")

    @property
    def short(self) -> str:
        return "ps" if self.type == "ps" else "wk"


def tf_layout(spec: JobSpec, nodes: Sequence[ManifestNode], base_port: int) -> list[TfTask]:
    """Every task: type, index, node index and host:port. Workers first, round-robin over nodes."""
    per_node = spec.process_count_per_node
    workers = int(spec.worker_count or len(nodes))
    ps = int(spec.parameter_server_count or 0)
    slots = len(nodes) * per_node
    if workers + ps > slots:
        raise SpecError("worker_count", f"worker_count={workers} + parameter_server_count={ps} "
                        f"is more than the {slots} process slots (node_count={len(nodes)} x "
                        f"process_count_per_node={per_node})", f"worker_count + ps <= {slots}")
    tasks = []
    for i in range(workers + ps):
        kind, index = ("worker", i) if i < workers else ("ps", i - workers)
        node_index = i % len(nodes)
        tasks.append(TfTask(type=kind, index=index, node=node_index, local=i // len(nodes),
                            host=f"{nodes[node_index].address}:{base_port + 1 + i}"))
    return tasks


def plan_tensorflow(inputs: PlanInputs) -> NodePlan:
    """This node's share of the tasks: one process each, logs stdout-wk-<i>.txt / stdout-ps-<i>.txt."""
    manifest, spec = inputs.manifest, inputs.spec
    tasks = tf_layout(spec, manifest.nodes, manifest.master_port)
    ps_hosts = [t.host for t in tasks if t.type == "ps"]
    worker_hosts = [t.host for t in tasks if t.type == "worker"]
    mine = [t for t in tasks if t.node == manifest.node_index]
    tf_args = spec.tensorflow_arguments or {}
    plans = []
    for task in mine:
        env = dict(inputs.env)
        env.update({
            "AZ_BATCHAI_PS_HOSTS": ",".join(ps_hosts),
            "AZ_BATCHAI_WORKER_HOSTS": ",".join(worker_hosts),
            "AZ_BATCHAI_TASK_INDEX": str(task.index),
            "AZ_BATCHAI_TASK_TYPE": task.task_type,
            "TF_CONFIG": json.dumps({"cluster": {"ps": ps_hosts, "worker": worker_hosts},
                                     "task": {"type": task.type, "index": task.index},
                                     "environment": "cloud"}),
        })
        visible = gpu_split(manifest.node.gpu_ids, spec.gpus_per_process or 0, task.local, len(mine))
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        args = tf_args.get(task.task_type)
        if args is None and task.task_type == "master":
            args = tf_args.get("worker")
        name = f"{task.short}-{task.index}"
        plans.append(ProcessPlan(name=name, argv=job_argv(spec, env, manifest.python, args), env=env,
                                 stdout=f"stdout-{name}.txt", stderr=f"stderr-{name}.txt"))
    return NodePlan(processes=plans)

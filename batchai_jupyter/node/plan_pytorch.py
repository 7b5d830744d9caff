"""No distribution and PyTorch: process_count_per_node processes per node, each with its rank.

distribution=None starts them side by side (AZ_BATCHAI_TASK_INDEX tells them apart);
distribution='pytorch' adds the torch.distributed env:// contract (MASTER_ADDR, MASTER_PORT,
WORLD_SIZE, RANK, LOCAL_RANK, NODE_RANK, LOCAL_WORLD_SIZE). Pure: see process.py.
"""
from __future__ import annotations

from .process import NodePlan, PlanInputs, ProcessPlan, gpu_split, job_argv, log_names, shared_host_threads


def plan_per_process(inputs: PlanInputs) -> NodePlan:
    """Every process of this node for distribution None or 'pytorch'."""
    manifest, spec = inputs.manifest, inputs.spec
    pytorch = spec.distribution == "pytorch"
    node_index = manifest.node_index
    per_node = 1 if spec.master_only else spec.process_count_per_node
    nodes = manifest.nodes
    world = len(nodes) * per_node
    gpu_ids = manifest.node.gpu_ids
    threads = shared_host_threads(inputs, per_node)
    plans = []
    for local_rank in range(per_node):
        rank = node_index * per_node + local_rank
        env = dict(inputs.env, **threads)
        env["AZ_BATCHAI_TASK_INDEX"] = str(rank)
        visible = gpu_split(gpu_ids, spec.gpus_per_process, local_rank, per_node)
        if visible is not None:
            env["CUDA_VISIBLE_DEVICES"] = visible
        if pytorch:
            env.update(MASTER_ADDR=nodes[0].address, MASTER_PORT=str(manifest.master_port),
                       WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(local_rank),
                       NODE_RANK=str(node_index), LOCAL_WORLD_SIZE=str(per_node))
        out, err = log_names(spec, node_index, local_rank)
        plans.append(ProcessPlan(name=f"{node_index}-{local_rank}",
                                 argv=job_argv(spec, env, manifest.python), env=env, stdout=out, stderr=err))
    return NodePlan(processes=plans)

"""Stand-in for a recipe's training script: says where it runs and what it sees, writes outputs.

    train.py TOOLKIT [--data DIR] [--out DIR] [anything else, echoed]
"""
import os
import sys

toolkit = sys.argv[1]
rest = sys.argv[2:]
rank = (os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ.get("RANK")
        or os.environ.get("AZ_BATCHAI_TASK_INDEX") or "0")
task = os.environ.get("AZ_BATCHAI_TASK_TYPE", "")
try:  # only in the container tests' image (ci/setup-containers.sh)
    import bai_image_marker
    where = bai_image_marker.IMAGE_ONLY
except ImportError:
    where = "host"
print(f"standin toolkit={toolkit} rank={rank} task={task} node={os.environ.get('BATCHAI_NODE_INDEX')} "
      f"where={where} args={' '.join(rest)}", flush=True)
args = dict(zip(rest[::2], rest[1::2]))
data = args.get("--data")
if data:
    with open(os.path.join(data, "input.txt")) as fh:
        print(f"standin read {fh.read().strip()!r} rank={rank}", flush=True)
out = args.get("--out") or os.environ.get("AZ_BATCHAI_OUTPUT_MODEL")
if out:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"model-{toolkit}-{task or 'p'}{rank}.txt"), "w") as fh:
        fh.write(f"{toolkit} {rank}\n")
print(f"standin done rank={rank}", file=sys.stderr, flush=True)

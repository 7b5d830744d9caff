"""The script of the migrated Batch AI job: prints what the job.json gave it."""
import argparse
import os

from batchai_jupyter import Run

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--batch-size", type=int, default=32)
args = parser.parse_args()

run = Run.get_context()
print(f"rank {os.environ.get('RANK')} of {os.environ.get('WORLD_SIZE')}, "
      f"master {os.environ.get('MASTER_ADDR')}", flush=True)
print(f"DATASET_NAME={os.environ.get('DATASET_NAME')}", flush=True)
# podman leaves /run/.containerenv in every container it starts
print("in a container" if os.path.exists("/run/.containerenv") else "on the host", flush=True)
for epoch in range(args.epochs):
    loss = round(1.0 / (epoch + 1), 3)
    print(f"epoch {epoch} batch_size {args.batch_size} loss {loss}", flush=True)
    run.log("loss", loss, step=epoch)
os.makedirs("outputs", exist_ok=True)
with open("outputs/summary.txt", "w") as fh:
    fh.write(f"trained {args.epochs} epochs\n")

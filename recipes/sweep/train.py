"""A stand-in training script for the sweep recipe: accuracy peaks at lr=0.1.

Swap the loop for real training; keep the Run.get_context() calls to report metrics.
"""
import argparse
import math
import time

from batchai_jupyter import Run

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, default=4)
args = parser.parse_args()

run = Run.get_context()
best = 1.0 - 0.5 * abs(math.log10(args.lr) + 1.0)  # 1.0 at lr=0.1, lower either side
for epoch in range(1, args.epochs + 1):
    acc = round(best * (1 - 0.5 ** epoch), 4)
    loss = round(1 - acc, 4)
    print(f"lr={args.lr} epoch={epoch} loss={loss} acc={acc}", flush=True)
    run.log("loss", loss, step=epoch)
    run.log("acc", acc, step=epoch)
    time.sleep(0.05)
run.log("final_acc", acc)

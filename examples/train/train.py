"""A tiny training script: fits y = 3x + 2 by gradient descent, logs loss, saves the model."""
import json
import os
import random
import sys
import time

from batchai_jupyter import Run

run = Run.get_context()
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 8
lr = float(os.environ.get("LEARNING_RATE", "0.1"))
random.seed(0)
data = [(x, 3 * x + 2 + random.gauss(0, 0.1)) for x in (random.uniform(-1, 1) for _ in range(256))]
w, b = 0.0, 0.0
for epoch in range(epochs):
    grad_w = sum(2 * (w * x + b - y) * x for x, y in data) / len(data)
    grad_b = sum(2 * (w * x + b - y) for x, y in data) / len(data)
    w, b = w - lr * grad_w, b - lr * grad_b
    loss = sum((w * x + b - y) ** 2 for x, y in data) / len(data)
    print(f"epoch {epoch}: loss={loss:.4f} w={w:.3f} b={b:.3f}", flush=True)
    run.log("loss", loss, step=epoch)
    time.sleep(0.3)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.json", "w") as fh:
    json.dump({"w": w, "b": b}, fh)
print("saved outputs/model.json")

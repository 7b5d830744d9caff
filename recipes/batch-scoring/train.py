"""Parallel-run entry script: one model per sensor file of the mini-batch, saved to MODELS."""
import os
from pathlib import Path

import pandas as pd
import sensors

PLACES = {}


def init():
    PLACES["models"] = Path(os.environ["AZ_BATCHAI_OUTPUT_MODELS"])  # uploaded to the datastore at the end


def run(mini_batch):
    rows = []
    for path in map(Path, mini_batch):
        readings = pd.read_csv(path)
        sensors.save(sensors.fit(readings), PLACES["models"] / f"{path.stem}.pkl")
        rows.append({"sensor": path.stem, "minutes": len(readings)})
    return rows

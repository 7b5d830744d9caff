"""Parallel-run entry script: score each sensor file of the mini-batch with that sensor's model.

Predictions (every minute with its score and flag) go to PREDICTIONS, one CSV per sensor; the
returned rows are the per-sensor summary; alerts are also logged as rows of the table "alerts".
"""
import os
from pathlib import Path

import sensors

from batchai_jupyter import Run

PLACES = {}


def init():
    PLACES["models"] = Path(os.environ["AZ_BATCHAI_INPUT_MODELS"])
    PLACES["predictions"] = Path(os.environ["AZ_BATCHAI_OUTPUT_PREDICTIONS"])
    # the slot a schedule fired for; a run started by hand scores "now"
    PLACES["slot"] = os.environ.get("BATCHAI_SCHEDULED_TIME", "")


def run(mini_batch):
    run_context = Run.get_context()
    rows = []
    for path in map(Path, mini_batch):
        row = sensors.score_file(path, PLACES["models"] / f"{path.stem}.pkl", PLACES["predictions"])
        row["scheduled_time"] = PLACES["slot"]
        if row["alert"]:
            run_context.log_row("alerts", device=row["Device"], tag=row["Tag"],
                                anomalous_minutes=row["anomalous_minutes"],
                                first=row["first_anomaly"], last=row["last_anomaly"])
        rows.append(row)
    return rows

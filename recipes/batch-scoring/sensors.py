"""Sensor readings and the per-sensor model, shared by the training and scoring entry scripts.

A reading is one row of TS, Device, Tag, Value (one value a minute per sensor). Each sensor
(a Device, Tag pair) gets its own StandardScaler + OneClassSVM pipeline, trained on its normal
readings; a scored minute is anomalous when the pipeline puts it outside what it learned.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

#: an alert is a sensor with at least this many anomalous minutes in the scored window: a lone
#: minute just outside the learned range is noise, a run of them is a fault
ALERT_MINUTES = 5
FEATURES = ["Value"]


def sensor_name(device: str, tag: str) -> str:
    """The file stem of a sensor's readings, model and predictions: `<device>_<tag>`."""
    return f"{device}_{tag}"


def synthetic_readings(devices: int = 10, tags: int = 10, hours: int = 5, start: str = "2026-01-05 00:00",
                       anomalies: dict[str, tuple[int, int, float]] | None = None, seed: int = 0) -> pd.DataFrame:
    """Minute readings of `devices` x `tags` sensors, each a level with bounded noise.

    anomalies: sensor name -> (first minute, minutes, offset in noise widths) added on top.
    """
    rng = np.random.default_rng(seed)
    minutes = hours * 60
    stamps = pd.date_range(start, periods=minutes, freq="min")
    frames = []
    for d in range(devices):
        for t in range(tags):
            device, tag = f"device-{d:02d}", f"tag-{t:02d}"
            level, width = rng.uniform(10, 100), rng.uniform(0.5, 3)
            noise = rng.normal(0, 1, 4 * minutes)
            values = level + width * noise[np.abs(noise) < 2.5][:minutes]
            first, length, offset = (anomalies or {}).get(sensor_name(device, tag), (0, 0, 0.0))
            values[first:first + length] += offset * width
            frames.append(pd.DataFrame({"TS": stamps, "Device": device, "Tag": tag, "Value": values.round(4)}))
    return pd.concat(frames, ignore_index=True)


def write_per_sensor(readings: pd.DataFrame, folder: Path) -> list[Path]:
    """One CSV per sensor, named by it: a parallel run's mini-batch is then a list of sensors."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for (device, tag), frame in readings.groupby(["Device", "Tag"], sort=True):
        path = folder / f"{sensor_name(str(device), str(tag))}.csv"
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def fit(readings: pd.DataFrame) -> Pipeline:
    """The sensor's model: standardise its values, learn their normal range (a one-class SVM)."""
    model = make_pipeline(StandardScaler(), OneClassSVM(nu=0.005, gamma=0.05))
    return model.fit(readings[FEATURES].to_numpy())


def score(model: Pipeline, readings: pd.DataFrame) -> pd.DataFrame:
    """The readings with Score (the SVM's decision value; below 0 is outside) and Anomaly."""
    values = readings[FEATURES].to_numpy()
    out = readings.copy()
    out["Score"] = model.decision_function(values).round(4)
    out["Anomaly"] = model.predict(values) == -1
    return out


def summary(scored: pd.DataFrame) -> dict[str, object]:
    """One row per scored sensor: how many minutes, how many anomalous, when, and is it an alert."""
    flagged = scored.loc[scored["Anomaly"], "TS"].astype(str)
    return {"Device": str(scored["Device"].iloc[0]), "Tag": str(scored["Tag"].iloc[0]),
            "minutes": len(scored), "anomalous_minutes": len(flagged),
            "first_anomaly": flagged.min() if len(flagged) else "",
            "last_anomaly": flagged.max() if len(flagged) else "",
            "alert": len(flagged) >= ALERT_MINUTES}


def save(model: Pipeline, path: Path) -> None:
    with open(path, "wb") as fh:
        pickle.dump(model, fh)


def load(path: Path) -> Pipeline:
    with open(path, "rb") as fh:
        model: Pipeline = pickle.load(fh)
    return model


def score_file(readings_csv: Path, model_file: Path, predictions: Path) -> dict[str, object]:
    """Score one sensor's readings file with its model; write its predictions to the folder
    `predictions` under the readings' name; return its summary row."""
    readings = pd.read_csv(readings_csv)
    scored = score(load(model_file), readings)
    scored.to_csv(predictions / readings_csv.name, index=False)
    return summary(scored)

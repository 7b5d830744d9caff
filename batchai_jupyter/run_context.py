"""Run.get_context(): the run as seen from inside a job — logging metrics and images.

Imports nothing beyond the standard library: it runs on every node inside the user's process.
A metric is one JSON line appended to $BATCHAI_METRICS_FILE; the engine tails that file into
the run history. Outside a job the same calls print, so a script runs unchanged on a laptop.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from typing import Any

_lock = threading.Lock()


class JobRun:
    """The current run inside a job (or an offline stand-in that prints)."""

    def __init__(self, run_id: str | None, experiment: str | None, metrics_file: str | None,
                 artifacts_dir: str | None):
        self.id = run_id or "OfflineRun"
        self.experiment_name = experiment
        self._metrics_file = metrics_file
        self._artifacts = artifacts_dir
        self.offline = metrics_file is None

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, offline={self.offline})"

    @classmethod
    def from_environment(cls) -> JobRun:
        return cls(os.environ.get("BATCHAI_RUN_ID"), os.environ.get("BATCHAI_EXPERIMENT"),
                   os.environ.get("BATCHAI_METRICS_FILE"), os.environ.get("BATCHAI_ARTIFACTS_DIR"))

    def _emit(self, name: str, kind: str, value: Any, step: int | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a metric needs a non-empty name")
        record = {"name": name, "kind": kind, "value": value, "step": step, "ts": time.time()}
        line = json.dumps(record, default=str) + "\n"
        if self._metrics_file is None:  # offline
            print(f"[metric] {name} = {value!r}" + (f" (step {step})" if step is not None else ""))
            return
        with _lock, open(self._metrics_file, "a", encoding="utf-8") as fh:
            fh.write(line)

    def log(self, name: str, value: Any, step: int | None = None, description: str = "") -> None:
        self._emit(name, "scalar", value, step)

    def log_list(self, name: str, values: list[Any], description: str = "") -> None:
        self._emit(name, "list", list(values))

    def log_row(self, name: str, description: str = "", **columns: Any) -> None:
        self._emit(name, "row", columns)

    def log_table(self, name: str, value: dict[str, list[Any]], description: str = "") -> None:
        self._emit(name, "table", value)

    def log_image(self, name: str, path: str | None = None, plot: Any = None,
                  description: str = "") -> None:
        """Keep an image (a PNG file, or a matplotlib figure) with the run."""
        if (path is None) == (plot is None):
            raise ValueError("log_image needs exactly one of path= or plot=")
        rel = f"images/{name}-{int(time.time() * 1000)}.png"
        if self.offline or self._artifacts is None:
            print(f"[image] {name}")
            return
        target = os.path.join(self._artifacts, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = target + ".part"
        if plot is not None:
            figure = plot.gcf() if hasattr(plot, "gcf") else plot
            figure.savefig(tmp, format="png")
        elif path is not None:
            shutil.copyfile(path, tmp)
        os.replace(tmp, target)
        self._emit(name, "image", rel)

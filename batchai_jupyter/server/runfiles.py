"""A run's logs, metrics and files, read from the workspace (never from a node)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FileNotInRun, RunNotFound
from ..history import TERMINAL_STATUSES
from ..run import Run
from ..view.metrics import metric_series
from ..view.reader import log_file_names
from ..view.rows import file_rows
from ..workspace import Workspace
from .errors import invalid
from .logs import read_range, read_tail
from .series import downsample


class RunFilesService:
    """Log, metric and file routes of one workspace (made per request)."""

    def __init__(self, workspace: Workspace):
        self.ws = workspace

    def _run(self, run_id: str) -> tuple[Run, bool]:
        """The run and whether it has ended (its files will not grow)."""
        status = self.ws.history.run_status(run_id)
        if status is None:
            raise RunNotFound(f"run {run_id!r} not found in workspace {self.ws.path}")
        return Run(self.ws, run_id), status in TERMINAL_STATUSES

    def log_files(self, run_id: str) -> dict[str, Any]:
        run, _final = self._run(run_id)
        return {"files": file_rows(run.files_dir, log_file_names(run.files_dir))}

    def read_log(self, run_id: str, name: str, offset: int, limit: int, tail_lines: int | None) -> dict[str, Any]:
        run, final = self._run(run_id)
        path = run.file_path(name)
        if tail_lines is not None:
            return read_tail(path, tail_lines, final)
        return read_range(path, offset, limit, final)

    def log_path(self, run_id: str, name: str) -> tuple[Path, bool]:
        """Where a log is, and whether its run ended; FileNotInRun while it does not exist yet."""
        run, final = self._run(run_id)
        return run.file_path(name), final

    def is_final(self, run_id: str) -> bool:
        return self._run(run_id)[1]

    def metrics(self, run_id: str) -> dict[str, Any]:
        """Every metric's name, kind and how many points it has (the current attempt's)."""
        run, _final = self._run(run_id)
        found: dict[str, dict[str, Any]] = {}
        for row in self.ws.history.metric_rows([run_id], None, run.attempt):
            entry = found.setdefault(row["name"], {"kind": row["kind"], "points": 0})
            entry["kind"] = row["kind"]
            entry["points"] += 1
        return {"metrics": found}

    def metric(self, run_id: str, name: str, max_points: int) -> dict[str, Any]:
        """One scalar metric as (step, value) points, at most max_points of them.

        A metric several ranks log is one series per rank: `points` is the lowest rank's and
        `ranks` holds every rank's series, each downsampled the same way."""
        run, _final = self._run(run_id)
        rows = self.ws.history.metric_rows([run_id], name, run.attempt)
        if not rows:
            known = sorted({r["name"] for r in self.ws.history.metric_rows([run_id], None, run.attempt)})
            raise FileNotInRun(f"run {run_id} has no metric {name!r} (it has: {', '.join(known) or 'none'})")
        series, _others = metric_series(rows)
        if not series:
            raise invalid("name", f"metric {name!r} is of kind {rows[-1]['kind']!r}, not numbers",
                          "a scalar metric (GET /runs/{id}/metrics lists the kinds)")
        labels = sorted(series, key=lambda label: (label != name, label))
        points = series[labels[0]]
        body: dict[str, Any] = {
            "name": name, "points": [{"step": s, "value": v} for s, v in downsample(points, max_points)],
            "downsampled": len(points) > max_points, "count": len(points)}
        if len(labels) > 1 or labels[0] != name:
            body["ranks"] = {label: [{"step": s, "value": v} for s, v in downsample(series[label], max_points)]
                             for label in labels}
        return body

    def file(self, run_id: str, name: str) -> Path:
        """A run file's path; FileNotInRun for names outside the run's files (`..`, absolute)."""
        run, _final = self._run(run_id)
        if name.startswith("/") or ".." in Path(name).parts:
            raise FileNotInRun(f"{name!r} is not a file of run {run_id} (names are relative, without '..')")
        return run.file_path(name)

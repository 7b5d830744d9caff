"""What a job reads of its run history: the workspace, opened read-only, where the node sees it.

On the local cluster (and any node whose run folder lies inside the workspace folder, e.g. a
shared root) the workspace is found upward from the run folder; reads first wait until the
engine has applied every record this job wrote, so a job reads its own writes. Elsewhere the
run answers from what it recorded itself (see JobRun). Our modules are imported here only when
a read is made: importing the Run API stays standard library only.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .channel import USER_PROPERTIES, Channel

if TYPE_CHECKING:
    from ..history import RunHistory
    from ..records import RunRow

#: how long a read waits for the engine to apply the job's records before answering anyway
CATCH_UP_SECONDS = 10.0


def iso(ts: float | None) -> str | None:
    return None if ts is None else _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat()


class WorkspaceView:
    """The run history of the workspace a run belongs to, read-only."""

    def __init__(self, root: Path, channel: Channel | None):
        from ..history import RunHistory
        self.root = root
        self.channel = channel
        self.history: RunHistory = RunHistory(root / "history.db", read_only=True)

    @classmethod
    def find(cls, run_dir: str | None, run_id: str, channel: Channel | None) -> WorkspaceView | None:
        """The workspace above `run_dir` that has this run, or None (the node cannot see it)."""
        if not run_dir:
            return None
        from ..layout import WorkspacePaths
        here = Path(run_dir).resolve()
        for folder in (here, *here.parents):
            paths = WorkspacePaths(folder)
            if paths.is_workspace() and paths.history_db.exists():
                try:
                    view = cls(folder, channel)
                    if view.history.run_row(run_id) is not None:
                        return view
                except Exception:  # noqa: BLE001 -- an unreadable workspace is not ours
                    return None
        return None

    def catch_up(self, run_id: str) -> None:
        """Wait (a while) until the engine has read this job's records up to now."""
        if self.channel is None:
            return
        size = self.channel.size()
        end = time.monotonic() + CATCH_UP_SECONDS
        while size and time.monotonic() < end:
            done = [off for (_node, path), off in self.history.offsets(run_id).items()
                    if path == self.channel.path]
            if done and max(done) >= size:
                return
            time.sleep(0.05)

    # -- reads ---------------------------------------------------------------------------------
    def row(self, run_id: str) -> RunRow | None:
        return self.history.run_row(run_id)

    def children(self, run_id: str) -> list[RunRow]:
        return list(reversed(self.history.run_rows(parent_id=run_id)))

    def metrics(self, run_id: str, name: str | None) -> dict[str, Any]:
        from ..view.metrics import summarize_metrics
        row = self.row(run_id)
        attempt = int(row["properties"].get("attempt", 0)) if row else 0
        return summarize_metrics(self.history.metric_rows([run_id], name, attempt))

    def files_dir(self, run_id: str) -> Path:
        from ..layout import WorkspacePaths
        return WorkspacePaths(self.root).run_files(run_id)

    def model_version(self, token: str) -> int | None:
        from ..model_registry import ModelRegistry
        row = ModelRegistry(self.history, self.root, create=False).by_token(token)
        return None if row is None else row["version"]


def details(row: RunRow) -> dict[str, Any]:
    """Azure ML's get_details() keys, from a run row."""
    out = {
        "runId": row["id"], "number": row["number"], "experiment": row["experiment"],
        "target": row["cluster"], "status": row["status"], "parentRunId": row["parent_id"],
        "submittedTimeUtc": iso(row["created"]), "startTimeUtc": iso(row["started"]),
        "endTimeUtc": iso(row["ended"]), "tags": dict(row["tags"]),
        "properties": dict(row["properties"].get(USER_PROPERTIES) or {}),
    }
    if row["error"]:
        out["error"] = row["error"]
    return out


def run_dir_of(metrics_file: str | None) -> str | None:
    return os.path.dirname(metrics_file) if metrics_file else None

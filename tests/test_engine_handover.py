"""An engine that exits because it is idle never strands a submit that raced its exit.

The client writes the run, then probes the engine lock: while the exiting engine still holds
it, the client starts none, so the exiting engine must look once more after letting go and
start a successor. Each round submits at a different moment around the engine's exit and then
only reads history.db (no client call that would start an engine itself).
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.engine.control import is_running

pytestmark = pytest.mark.timeout(300)
ROUNDS = 24


def _final_status(ws: bai.Workspace, run_id: str, timeout: float) -> str | None:
    """The run's status once it is final, read from history.db alone (None: not final in time)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = ws.history.run_status(run_id)
        if status in ("Completed", "Failed", "Canceled"):
            return status
        time.sleep(0.02)
    return None


def test_submits_racing_an_exiting_engine_all_complete(ws: bai.Workspace, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_ENGINE_IDLE_SECONDS", "0.2")  # engines spawned from here exit soon
    src = tmp_path / "quick"
    src.mkdir()
    (src / "quick.py").write_text("print('done', flush=True)\n")
    ws.create_cluster("race", max_nodes=1, idle_seconds_before_scaledown=0)
    exp = ws.experiment("race")
    spec = bai.JobSpec(source_directory=src, script="quick.py")
    stranded, exits_seen = [], 0
    for round_ in range(ROUNDS):
        run = exp.submit(spec, cluster="race")
        if _final_status(ws, run.id, 60) != "Completed":
            stranded.append((round_, run.id, ws.history.run_status(run.id), is_running(ws.path)))
            break
        # the next submit lands before, during or after this engine's idle exit
        delay = 0.15 + 0.4 * (round_ % 8) / 7
        time.sleep(delay)
        exits_seen += not is_running(ws.path)
    assert not stranded, f"runs left without an engine (round, id, status, engine running): {stranded}"
    assert exits_seen > 0, "the engine never exited between rounds: the race was not exercised"

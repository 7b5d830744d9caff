"""The live metric charts' kernel side: each point reaches the front end once, a late view
or a requeue gets the kept series once, and no chart is ever resent whole."""
from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter.history import RunHistory
from batchai_jupyter.notebook.metrics_pane import MetricsPane
from batchai_jupyter.notebook.widget import RunDetails
from batchai_jupyter.view.reader import MetricsTail
from tests.notebook.nb_helpers import recording_comms

POINTS = 2000
# 2,000 points over about four seconds, while the widget polls
LOGGER = textwrap.dedent(f"""
    import time
    from batchai_jupyter import Run
    run = Run.get_context()
    for i in range({POINTS}):
        run.log("loss", 1.0 / (i + 1), step=i)
        if i % 10 == 9:
            time.sleep(0.02)
    print("done", flush=True)
""")


def _chart_messages(sent: list[dict]) -> list[dict]:
    """The metric pane's messages (its contents carry `points`), with their wire size."""
    return [m for m in sent if m["type"] == "comm_msg" and m["data"].get("method") == "custom"
            and "points" in m["data"]["content"]]


def test_a_job_logging_2000_points_sends_each_point_once(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    run = ws.experiment("charts").submit(bai.JobSpec(source_directory=src, script="main.py"),
                                         extra_files={"main.py": LOGGER.encode()})
    with recording_comms() as sent:
        widget = RunDetails(run, poll_seconds=0.05)
        assert widget.wait(120), "the update thread must stop when the run ends"
        assert widget.status == "Completed"
        messages = _chart_messages(sent)
        appends = [m["data"]["content"] for m in messages]
        steps = [p[0] for c in appends for _name, _rank, pts in c["points"] for p in pts]
        assert sorted(steps) == list(range(POINTS))  # every point, each once
        assert len(appends) > 5 and all(c["kind"] == "append" for c in appends)  # deltas, no resend
        points_json = sum(len(json.dumps([s, 1.0 / (s + 1)])) for s in range(POINTS))
        wire = sum(m["bytes"] for m in messages)
        print(f"chart bytes {wire:,} for {points_json:,} bytes of points")
        assert wire <= 1.5 * points_json, (wire, points_json)
        # no chart image went over the comm while the run was live
        assert not any("data:image/svg" in json.dumps(m["data"]) for m in sent)
        assert widget.metrics.layout.display is None
        # a view opened now gets the whole series once
        widget.metrics._on_front_end(widget.metrics, {"kind": "sync"}, [])
        reset = _chart_messages(sent)[-1]["data"]["content"]
        assert reset["kind"] == "reset" and reset["seq"] == appends[-1]["seq"]
        [(name, rank, pts)] = reset["points"]
        assert (name, rank, len(pts)) == ("loss", None, POINTS) and pts[-1] == [1999, 1 / 2000]
        widget.close()


def test_ranks_requeues_and_values_json_cannot_carry(tmp_path: Path) -> None:
    """One series per rank; NaN is not drawn (it is not JSON); a requeue's new attempt
    replaces the earlier one's series with one reset; lists are shown as text."""
    history = ws_history(tmp_path)
    with recording_comms() as sent:
        pane = MetricsPane(MetricsTail(history, "r1"))
        assert pane.empty and not pane.poll()
        history.record_metrics("r1", "n0", "m.jsonl", 1, [
            {"name": "loss", "value": 0.5, "step": 0, "rank": 0},
            {"name": "loss", "value": 0.7, "step": 0, "rank": 1},
            {"name": "loss", "value": math.nan, "step": 1, "rank": 0},
            {"name": "classes", "kind": "list", "value": ["cat", "dog"]}])
        assert pane.poll()
        first = _chart_messages(sent)[-1]["data"]["content"]
        assert first["kind"] == "append"
        assert first["points"] == [["loss", 0, [[0, 0.5]]], ["loss", 1, [[0, 0.7]]]]
        assert first["others"] == {"classes": "['cat', 'dog']"}
        history.record_metrics("r1", "n0", "m.jsonl", 2, [{"name": "loss", "value": 0.4, "step": 2,
                                                            "rank": 0}])
        assert pane.poll()
        second = _chart_messages(sent)[-1]["data"]["content"]
        assert second["points"] == [["loss", 0, [[2, 0.4]]]] and "others" not in second
        history.record_metrics("r1", "n0", "m2.jsonl", 1, [{"name": "acc", "value": 0.1, "step": 0}],
                               attempt=1)
        assert pane.poll()
        reset = _chart_messages(sent)[-1]["data"]["content"]
        assert reset["kind"] == "reset" and reset["points"] == [["acc", None, [[0, 0.1]]]]
        assert reset["others"] == {}


def ws_history(tmp_path: Path) -> RunHistory:
    history = RunHistory(tmp_path / "history.db")
    history.insert_run("r1", "e", "local", {}, None, {}, 1)
    return history

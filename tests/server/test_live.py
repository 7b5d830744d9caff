"""Real runs on the local cluster through the REST API: submit, logs, metrics, files,
cancel, rerun and delete, as the panel does them."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import batchai_jupyter as bai

from .conftest import Call

TERMINAL = ("Completed", "Failed", "Canceled")


async def wait_status(api: Call, run_id: str, wanted: tuple[str, ...] = TERMINAL,
                      timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, body, _ = await api("runs", run_id)
        assert code == 200, body
        if body["status"] in wanted:
            return body
        assert time.monotonic() < deadline, f"run {run_id} still {body['status']}"
        await asyncio.sleep(0.3)


async def test_a_run_submitted_completes_and_its_logs_read_right(api: Call, ws: bai.Workspace, src: Path) -> None:
    spec = {"source_directory": str(src), "script": "train.py", "arguments": ["40"]}
    code, row, _ = await api("runs", method="POST", body={"experiment": "lab", "spec": spec, "tags": {"a": "1"},
                                                          "idempotency_key": "k-1"})
    assert code == 201 and row["status"] == "Queued" and row["tags"]["a"] == "1"
    code, again, _ = await api("runs", method="POST", body={"experiment": "lab", "spec": spec,
                                                            "idempotency_key": "k-1"})
    assert code == 200 and again["id"] == row["id"]
    assert ws.history.count_runs() == 1
    done = await wait_status(api, row["id"])
    assert done["status"] == "Completed", done["details"].get("error")
    assert "outputs/model.txt" in done["files"] and done["details"]["runId"] == row["id"]

    code, listing, _ = await api("runs", row["id"], "logs")
    names = [f["name"] for f in listing["files"]]
    assert "logs/train.log" in names
    stdout = next(n for n in names if n.startswith("stdout"))
    path = ws.run_files_dir(row["id"]) / stdout
    data = path.read_bytes()
    size = next(f["size"] for f in listing["files"] if f["name"] == stdout)
    assert size == len(data)

    code, chunk, _ = await api("runs", row["id"], "logs", stdout, params={"offset": "10", "limit": "25"})
    assert code == 200
    assert chunk["offset"] == 10 and chunk["next_offset"] == 35 and chunk["size"] == len(data)
    assert chunk["text"] == data[10:35].decode()
    assert chunk["complete"] is False
    code, chunk, _ = await api("runs", row["id"], "logs", stdout, params={"offset": "35"})
    assert chunk["text"] == data[35:].decode() and chunk["complete"] is True

    code, tail, _ = await api("runs", row["id"], "logs", stdout, params={"tail_lines": "3"})
    assert tail["text"].splitlines() == data.decode().splitlines()[-3:]
    assert tail["next_offset"] == len(data) and data[tail["offset"]:].decode() == tail["text"]

    code, body, _ = await api("runs", row["id"], "metrics")
    assert body["metrics"]["loss"] == {"kind": "scalar", "points": 40}
    code, body, _ = await api("runs", row["id"], "metrics", "loss", params={"max_points": "10"})
    assert body["downsampled"] is True and len(body["points"]) <= 10
    values = [p["value"] for p in body["points"]]
    assert max(values) == 1.0 and min(values) == min(1.0 / (e + 1) for e in range(40))
    code, body, _ = await api("runs", row["id"], "metrics", "nope")
    assert code == 404

    code, _, response = await api("runs", row["id"], "files", "outputs/model.txt")
    assert code == 200 and response.body == b"weights"
    assert response.headers["Content-Disposition"].startswith("attachment")
    code, body, _ = await api("runs", row["id"], "files", "../../workspace.json")
    assert code == 404 and body["code"] == "not_found"

    code, events, _ = await api("runs", row["id"], "events")
    assert events["events"][0]["status"] == "Queued"
    assert events["events"][-1]["status"] == "Completed"

    code, again, _ = await api("runs", f"{row['id']}:rerun", method="POST")
    assert code == 201 and again["id"] != row["id"] and again["tags"]["rerun_of"] == row["id"]
    assert "idempotency_key" not in again["tags"]
    rerun = await wait_status(api, again["id"])
    assert rerun["status"] == "Completed"
    assert ws.history.run_row(again["id"])["snapshot"] == ws.history.run_row(row["id"])["snapshot"]


async def test_cancel_and_delete(api: Call, ws: bai.Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "sleepy"
    folder.mkdir()
    code, row, _ = await api("runs", method="POST", body={"experiment": "lab", "spec": {
        "source_directory": str(folder), "command": "sleep 120"}})
    assert code == 201
    await wait_status(api, row["id"], ("Running",))
    code, body, _ = await api("runs", row["id"], method="DELETE")
    assert code == 409 and body["code"] == "conflict" and ":cancel" in body["hint"]
    code, body, _ = await api("runs", f"{row['id']}:cancel", method="POST")
    assert code == 200 and body["id"] == row["id"]
    ended = await wait_status(api, row["id"], timeout=60)
    assert ended["status"] == "Canceled"
    code, body, _ = await api("runs", f"{row['id']}:cancel", method="POST")
    assert code == 409 and body["code"] == "conflict"
    code, body, _ = await api("runs", row["id"], method="DELETE")
    assert code == 204
    code, body, _ = await api("runs", row["id"])
    assert code == 404

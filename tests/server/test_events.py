"""The events feed: a run submitted by another process shows up on the WebSocket, and a
client that reconnects with after=SEQ gets what it missed and nothing twice."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import batchai_jupyter as bai

from .conftest import API, Call

SUBMIT = """
import sys, batchai_jupyter as bai
ws = bai.Workspace(sys.argv[1])
run = ws.experiment("elsewhere").submit(bai.JobSpec(source_directory=sys.argv[2], command="echo hi"))
print(run.id)
"""


def submit_elsewhere(ws: bai.Workspace, folder: Path) -> str:
    done = subprocess.run([sys.executable, "-c", SUBMIT, str(ws.path), str(folder)], capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout.strip().splitlines()[-1]


async def next_events(conn: Any, until: Any, timeout: float = 60) -> list[dict[str, Any]]:
    """Messages until one satisfies `until` (all of them, in order)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not got or not until(got[-1]):
        left = deadline - time.monotonic()
        assert left > 0, f"no matching event; got {got}"
        message = await asyncio.wait_for(conn.read_message(), left)
        assert message is not None, "the socket closed"
        got.append(json.loads(message))
    return got


async def test_events_socket_pushes_and_resumes(jp_ws_fetch: Any, api: Call, ws: bai.Workspace,
                                                tmp_path: Path) -> None:
    folder = tmp_path / "job"
    folder.mkdir()
    start = ws.history.last_event_seq()
    conn = await jp_ws_fetch(*API, "events", params={"after": str(start)})
    run_id = await asyncio.get_running_loop().run_in_executor(None, submit_elsewhere, ws, folder)
    got = await next_events(conn, lambda e: e.get("run_id") == run_id and e["type"] == "run.status")
    queued = got[-1]
    assert queued["status"] == "Queued" and queued["experiment"] == "elsewhere" and queued["seq"] > start
    ended = await next_events(conn, lambda e: e.get("run_id") == run_id and e.get("status") in
                              ("Completed", "Failed"))
    assert ended[-1]["status"] == "Completed"
    statuses = [e["status"] for e in got + ended if e["type"] == "run.status" and e["run_id"] == run_id]
    seqs = [e["seq"] for e in got + ended if e["type"] == "run.status"]
    assert seqs == sorted(set(seqs)), "each status event once, in order"
    assert statuses[0] == "Queued" and "Running" in statuses
    conn.close()

    # reconnect after the Queued event: every later event again, the Queued one not
    again = await jp_ws_fetch(*API, "events", params={"after": str(queued["seq"])})
    replay = await next_events(again, lambda e: e.get("run_id") == run_id and e.get("status") == "Completed")
    replayed = [e for e in replay if e["type"] == "run.status" and e["run_id"] == run_id]
    assert [e["status"] for e in replayed] == statuses[1:]
    assert all(e["seq"] > queued["seq"] for e in replay if e["type"] == "run.status")
    again.close()

    # the polling fallback gives the same events
    code, body, _ = await api("events", params={"after": str(start)})
    assert code == 200
    polled = [e["status"] for e in body["events"] if e["run_id"] == run_id]
    assert polled == statuses and body["seq"] == body["events"][-1]["seq"]


async def test_log_follow_socket_reads_to_the_end(jp_ws_fetch: Any, api: Call, ws: bai.Workspace,
                                                  tmp_path: Path) -> None:
    folder = tmp_path / "count"
    folder.mkdir()
    (folder / "count.py").write_text("import time\nfor i in range(20):\n    print('line', i, flush=True)\n"
                                     "    time.sleep(0.05)\n")
    code, row, _ = await api("runs", method="POST", body={"experiment": "f", "spec": {
        "source_directory": str(folder), "script": "count.py"}})
    assert code == 201
    deadline = time.monotonic() + 60
    while True:  # the stdout file appears once the job started
        code, body, _ = await api("runs", row["id"], "logs")
        names = [f["name"] for f in body["files"] if f["name"].startswith("stdout")]
        if names:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    conn = await jp_ws_fetch(*API, "runs", row["id"], "logs", names[0], "follow", params={"offset": "0"})
    text, last = "", {}
    while True:
        message = await asyncio.wait_for(conn.read_message(), 60)
        if message is None:
            break
        last = json.loads(message)
        text += last["text"]
    assert last["complete"] is True
    assert text == "".join(f"line {i}\n" for i in range(20))

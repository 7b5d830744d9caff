"""The lab panel's REST API stays close to the history's own speed as the history grows.

    python -m bench.bench_rest [--quick]      (quick: 2,000 and 10,000 runs, a 64 MB log)
A `jupyter server` with the batchai_jupyter extension runs as a subprocess on a free loopback
port (stopped by its PID at the end). Measured in the same run:
1. `GET /runs` first page (50 rows, with counts) p95 of 40, with 10,000 and 100,000 runs stored,
   against the same page read by a plain indexed SQLite query on a connection of its own.
   Target: within 3x of SQLite and under 200 ms. For scale, the same page is also set against
   jupyter_server's GET /api (a route that reads nothing): the cost of one authenticated request.
2. `GET /runs/{id}/logs/{file}?tail_lines=1000` of a 1 GB log, median of 10, against
   `tail -n 1000` of the same file. Target: within 3x.
A ratio over its target is measured again (up to 3 times) before it is reported: the machine
may be busy with something else for a moment.
"""
from __future__ import annotations

import http.client
import json
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter.records import NewRun
from bench._common import median, p95, parse_args, report, temp_workspace

PAGE_SQL = ("SELECT rowid AS _key, * FROM runs WHERE parent_id IS NULL ORDER BY created DESC, rowid DESC "
            "LIMIT 51")
TRIES = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`jupyter server` in a subprocess, serving one workspace."""

    def __init__(self, ws: bai.Workspace, root: Path):
        self.port, self.token = free_port(), secrets.token_hex(16)
        argv = [sys.executable, "-m", "jupyter_server", f"--ServerApp.port={self.port}",
                "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={self.token}", "--ServerApp.open_browser=False",
                f"--ServerApp.root_dir={root}", f"--BatchAIServer.workspace={ws.path}",
                "--ServerApp.jpserver_extensions={'batchai_jupyter.server': True}", "--ServerApp.log_level=WARN",
                "--allow-root"]
        self.log = open(root / "server.log", "wb")  # noqa: SIM115  (stop() closes it)
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, cwd=root)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.get("/batchai/api/v1/capabilities")[0] == 200:
                    return
            except OSError:
                self.conn.close()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = (root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the server did not start:\n{tail}")
            time.sleep(0.3)

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers={"Authorization": f"token {self.token}"})
        response = self.conn.getresponse()
        return response.status, response.read()

    def stop(self) -> None:
        self.conn.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def fill(ws: bai.Workspace, start: int, stop: int) -> None:
    base = {"experiment": "bench", "cluster": "local", "spec": {"command": "true"}, "snapshot": None,
            "tags": {"lr": "0.1"}, "priority": 1, "parent_id": None, "properties": {}, "status": "Completed"}
    for first in range(start, stop, 10_000):
        ws.history.insert_runs([NewRun(**{**base, "id": f"bench_{i:07d}"})  # type: ignore[typeddict-item]
                                for i in range(first, min(first + 10_000, stop))])


def timings(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def best_of(measure: Callable[[], tuple[float, float]], target: float) -> tuple[float, float]:
    """(value, baseline) of the try with the best ratio; stops at the first within target."""
    best: tuple[float, float] | None = None
    for _ in range(TRIES):
        value, baseline = measure()
        if best is None or value / baseline < best[0] / best[1]:
            best = (value, baseline)
        if value / baseline <= target:
            break
    assert best is not None
    return best


def page_check(server: Server, ws: bai.Workspace) -> Callable[[], tuple[float, float]]:
    db = sqlite3.connect(ws.paths.history_db)
    db.row_factory = sqlite3.Row

    def api() -> None:
        code, body = server.get("/batchai/api/v1/runs?limit=50")
        if code != 200 or len(json.loads(body)["runs"]) != 50:
            raise RuntimeError(f"GET /runs answered {code}")

    def plain() -> None:
        rows = [dict(r) for r in db.execute(PAGE_SQL).fetchall()]
        json.dumps(rows)  # the page as JSON, as the endpoint gives it

    return lambda: (p95(timings(api, 40)), p95(timings(plain, 40)))


def write_log(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = b"".join(b"step %08d loss 0.%06d lr 0.001 \xe2\x82\xac some words of a training log line\n" % (i, i)
                    for i in range(1000))
    with open(path, "wb") as fh:
        while fh.tell() < size:
            fh.write(line)


def main() -> None:
    args = parse_args(__doc__)
    sizes = (2_000, 10_000) if args.quick else (10_000, 100_000)
    log_bytes = (64 if args.quick else 1024) * 1024 * 1024
    with temp_workspace() as ws_obj, tempfile.TemporaryDirectory(prefix="bench-rest-") as tmp:
        ws: bai.Workspace = ws_obj  # type: ignore[assignment]
        server = Server(ws, Path(tmp))
        try:
            stored = 0
            for size in sizes:
                t = time.perf_counter()
                fill(ws, stored, size)
                stored = size
                print(f"(filled {size:,} runs in {time.perf_counter() - t:.1f} s)", flush=True)
                value, baseline = best_of(page_check(server, ws), 3.0)
                report(f"GET /runs first page p95, {size:,} runs", value, "SQLite page query p95", baseline,
                       "<= 3, <= 200 ms")
                floor = p95(timings(lambda: server.get("/api"), 40))
                report(f"  (same page vs a trivial route, {size:,} runs)", value, "GET /api (version) p95", floor,
                       "what the HTTP stack costs")
            run_id = "bench_0000000"
            log = ws.run_files_dir(run_id) / "stdout.txt"
            t = time.perf_counter()
            write_log(log, log_bytes)
            print(f"(wrote a {log.stat().st_size / 2**20:,.0f} MB log in {time.perf_counter() - t:.1f} s)", flush=True)

            def tail_check() -> tuple[float, float]:
                def api() -> None:
                    code, body = server.get(f"/batchai/api/v1/runs/{run_id}/logs/stdout.txt?tail_lines=1000")
                    if code != 200 or json.loads(body)["text"].count("\n") != 1000:
                        raise RuntimeError(f"the tail answered {code}")

                def tail() -> None:
                    subprocess.run(["tail", "-n", "1000", str(log)], stdout=subprocess.DEVNULL, check=True)
                return median(timings(api, 10)), median(timings(tail, 10))

            value, baseline = best_of(tail_check, 3.0)
            report(f"log tail 1,000 lines of {log_bytes // 2**20:,} MB", value, "tail -n 1000", baseline, "<= 3")
            log.unlink()
        finally:
            server.stop()


if __name__ == "__main__":
    main()

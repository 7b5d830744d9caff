"""The process every rank of a parallel run executes: `python -m batchai_jupyter.parallel.worker`.

It imports the entry script, calls its init() once, then leases mini-batches from the shared
queue (queue.py) and calls run(mini_batch) on each until every batch is done or failed for good,
renewing its lease meanwhile. Each batch's rows go to a file named by the batch and the batch is
committed once; rank 0 also logs progress (metric row "parallel") and, at the end, writes
./outputs: parallel_run_step.<fmt> (append_row) or batches/batch-<n>.<fmt> (per_batch), plus
failed_batches.json, and ./logs/parallel_workers.json (every worker's phase times and CPU
seconds: where the run's time went). More failed items than error_threshold: the run fails (exit code 1).
"""
from __future__ import annotations

import atexit
import csv
import importlib.util
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from .config import CONFIG_ENV
from .queue import BatchQueue

RENEW_EVERY = 2.0
#: how often an idle worker looks at the queue again (the queue is ready, a batch freed, the last
#: batches of the others done): the tail of a run waits at most this long
WAIT_SECONDS = 0.02


def _items(settings: dict[str, Any], cwd: Path) -> list[Any]:
    if settings.get("items_file"):
        items: list[Any] = json.loads((cwd / settings["items_file"]).read_text())
    else:
        root = Path(os.environ[f"AZ_BATCHAI_INPUT_{settings['input_id']}"])
        items = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    only = settings.get("only_items")
    if only is not None:
        keep = [json.dumps(i, sort_keys=True) for i in only]
        items = [i for i in items if json.dumps(i, sort_keys=True) in keep]
    return items


def _load(script: Path) -> Any:
    spec = importlib.util.spec_from_file_location("batchai_parallel_entry", script)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import the entry script {script}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(script.parent))
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise SystemExit(f"the entry script {script.name} defines no run(mini_batch)")
    return module


def _rows(result: Any) -> list[Any]:
    """run()'s answer as a list of rows (a DataFrame's records, a list, one value)."""
    if hasattr(result, "to_dict") and hasattr(result, "columns"):
        return list(result.to_dict("records"))
    if result is None:
        return []
    return list(result) if isinstance(result, (list, tuple)) else [result]


class _Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise _Timeout()


def main() -> int:
    trace: dict[str, Any] = {"start": time.time()}
    settings = json.loads(os.environ[CONFIG_ENV])
    cwd = Path.cwd()
    rank = int(os.environ.get("AZ_BATCHAI_TASK_INDEX", "0"))
    shared = Path(os.environ.get("AZ_BATCHAI_SHARED_JOB_TEMP") or os.environ.get("AZ_BATCHAI_JOB_TEMP") or cwd)
    out_dir = shared / "parallel-out"
    out_dir.mkdir(parents=True, exist_ok=True)
    queue = BatchQueue(shared / "parallel.db")
    owner = f"{socket.gethostname()}:{os.getpid()}:{rank}"
    if rank == 0:
        items = _items(settings, cwd)
        size = int(settings["mini_batch_size"])
        queue.fill([items[i:i + size] for i in range(0, len(items), size)])
    module = _load(cwd / settings["entry_script"])  # while rank 0 fills the queue
    trace["imported"] = time.time()
    if callable(getattr(module, "init", None)):
        module.init()
    trace["init"] = time.time()
    while not queue.ready():
        time.sleep(WAIT_SECONDS)
    input_root = Path(os.environ[f"AZ_BATCHAI_INPUT_{settings['input_id']}"]) if settings.get("input_id") else None
    signal.signal(signal.SIGALRM, _alarm)
    current: list[int] = []  # the batch being worked on (for the lease renewer)
    stop = threading.Event()

    def renew() -> None:
        renewer = BatchQueue(shared / "parallel.db")
        while not stop.wait(RENEW_EVERY):
            if current:
                renewer.renew(current[0], owner)

    threading.Thread(target=renew, daemon=True).start()
    progress = _Progress(queue, settings) if rank == 0 else None
    threshold = int(settings["error_threshold"])
    while queue.flag("abort") is None:
        got = queue.lease(owner)
        if got is None:
            counts = queue.counts()
            if counts["pending"] == 0 and counts["leased"] == 0:
                break
            time.sleep(WAIT_SECONDS)  # others are working (or a lost lease has yet to expire)
            continue
        batch, items = got
        trace.setdefault("first_lease", time.time())
        trace["batches"] = trace.get("batches", 0) + 1
        current[:] = [batch]
        mini_batch = [str(input_root / i) for i in items] if input_root is not None else items
        try:
            signal.alarm(int(settings["batch_timeout"]))
            try:
                rows = _rows(module.run(mini_batch))
            finally:
                signal.alarm(0)
            tmp = out_dir / f"batch-{batch}.jsonl.{os.getpid()}.tmp"
            with open(tmp, "w") as fh:
                fh.writelines(json.dumps(row, default=str) + "\n" for row in rows)
            os.replace(tmp, out_dir / f"batch-{batch}.jsonl")
            queue.commit(batch, owner, len(rows))
        except _Timeout:
            queue.fail(batch, owner, f"run() took longer than batch_timeout={settings['batch_timeout']} s",
                       int(settings["retries"]))
        except Exception as exc:  # noqa: BLE001 — the entry script's failure: this batch, not the worker
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            print(f"mini-batch {batch} failed: {text}", file=sys.stderr, flush=True)
            queue.fail(batch, owner, text, int(settings["retries"]))
        current[:] = []
        if threshold >= 0 and queue.failed_items() > threshold:
            queue.set_flag("abort", f"{queue.failed_items()} failed items, more than error_threshold={threshold}")
        if progress is not None:
            progress.maybe_log()
    stop.set()
    trace["last_batch"] = time.time()
    _record(queue, owner, trace)
    if rank != 0:
        return 0
    while queue.flag("abort") is None and queue.counts()["leased"]:
        time.sleep(WAIT_SECONDS)  # the last batches of the other workers
    assert progress is not None
    progress.log()
    _write_outputs(queue, settings, out_dir, cwd / "outputs")
    trace["outputs"] = time.time()
    _record(queue, owner, trace)
    _write_workers(queue, cwd / "logs", int(settings.get("workers") or 1))
    abort = queue.flag("abort")
    if abort:
        print(f"parallel run failed: {abort}", file=sys.stderr, flush=True)
        return 1
    return 0


def _record(queue: BatchQueue, owner: str, trace: dict[str, Any]) -> None:
    """This worker's phase times (epoch seconds: start, imported, init, first_lease, last_batch)
    and CPU seconds, in the queue: rank 0 writes them all to logs/parallel_workers.json."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.set_worker(owner, {**trace, "cpu_user": round(usage.ru_utime, 3), "cpu_sys": round(usage.ru_stime, 3)})


def _write_workers(queue: BatchQueue, logs: Path, expected: int) -> None:
    """logs/parallel_workers.json: where the run's time went, worker by worker. A worker records
    itself as its loop ends, a moment after the last batch; one that died never does (5 s at
    most are waited for it)."""
    deadline = time.monotonic() + 5.0
    while len(queue.workers()) < expected and time.monotonic() < deadline:
        time.sleep(WAIT_SECONDS)
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "parallel_workers.json").write_text(json.dumps(queue.workers(), indent=1))


class _Progress:
    """Rank 0's progress row (metric "parallel"): batches total/done/failed/running, items/s, eta."""

    def __init__(self, queue: BatchQueue, settings: dict[str, Any]):
        self.queue = queue
        self.size = int(settings["mini_batch_size"])
        self.start = time.time()
        self.last = 0.0

    def maybe_log(self) -> None:
        if time.time() - self.last >= 1.0:
            self.log()

    def log(self) -> None:
        from batchai_jupyter import Run
        self.last = time.time()
        c = self.queue.counts()
        total = sum(c.values())
        finished = c["done"] + c["failed"]
        rate = finished * self.size / max(1e-6, time.time() - self.start)
        eta = (total - finished) * self.size / rate if rate else None
        Run.get_context().log_row("parallel", total=total, done=c["done"], failed=c["failed"],
                                  running=c["leased"], items_per_s=round(rate, 3),
                                  eta_seconds=None if eta is None else round(eta, 1))


def _write_outputs(queue: BatchQueue, settings: dict[str, Any], out_dir: Path, outputs: Path) -> None:
    outputs.mkdir(parents=True, exist_ok=True)
    fmt = settings["output_format"]
    ids = queue.done_ids()
    if settings["output"] == "append_row":
        _write(outputs / f"parallel_run_step.{fmt}", [out_dir / f"batch-{i}.jsonl" for i in ids], fmt)
    else:
        (outputs / "batches").mkdir(exist_ok=True)
        for i in ids:
            _write(outputs / "batches" / f"batch-{i}.{fmt}", [out_dir / f"batch-{i}.jsonl"], fmt)
    (outputs / "failed_batches.json").write_text(json.dumps(queue.failed(), indent=1))


def _write(target: Path, sources: list[Path], fmt: str) -> None:
    rows = [json.loads(line) for src in sources for line in src.read_text().splitlines() if line]
    with open(target, "w", newline="") as fh:
        if fmt == "jsonl":
            fh.writelines(json.dumps(r) + "\n" for r in rows)
            return
        dict_rows = [r for r in rows if isinstance(r, dict)]
        columns = list(dict.fromkeys(k for r in dict_rows for k in r)) if dict_rows else []
        writer = csv.writer(fh)
        if columns:
            writer.writerow(columns)
        for r in rows:
            if isinstance(r, dict):
                writer.writerow([r.get(c, "") for c in columns])
            else:
                writer.writerow(r if isinstance(r, list) else [r])


def _end(code: int) -> None:
    """Exit without the interpreter's teardown: freeing every object of the modules a scoring
    script loads (pandas, sklearn, ...) takes ~0.2 s that the run's end would wait for. atexit
    handlers still run and the streams are flushed; while a non-daemon thread of the entry
    script's is alive, the usual exit (which waits for it) is taken instead."""
    main_thread = threading.main_thread()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not main_thread):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed stream: nothing left to write
            pass
    os._exit(code)


if __name__ == "__main__":
    _end(main())

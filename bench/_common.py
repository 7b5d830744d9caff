"""Helpers shared by the benchmarks: a temp workspace, quick mode, ratio printing."""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1",
                        help="small sizes, seconds not minutes (CI proves the benchmark works)")
    return parser.parse_args()


@contextmanager
def temp_workspace() -> Iterator[object]:
    import batchai_jupyter as bai
    from batchai_jupyter.engine.control import stop_engine
    accounts = _accounts()
    tmp = tempfile.mkdtemp(prefix="bench-")
    try:
        ws = bai.Workspace.create(Path(tmp) / ".batchai")
        try:
            yield ws
        finally:
            stop_engine(ws.path)
            _remove_node_folders_outside(ws)
            _remove_accounts_made(ws, accounts)
    finally:
        _remove_tree(tmp)


def _remove_tree(path: str, seconds: float = 10.0) -> None:
    """rmtree, again while it fails: a node agent tidies its folders (a finished run's folder,
    the cache's upkeep) for a moment after its run shows as ended, and may still be writing."""
    import shutil
    import time
    end = time.monotonic() + seconds
    while True:
        try:
            shutil.rmtree(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def _remove_node_folders_outside(ws: object) -> None:
    """A root engine keeps local node folders outside the workspace (run_as, docs/security.md):
    they go with the benchmark's temporary workspace."""
    import shutil

    from batchai_jupyter.compute.local.accounts import isolated_root
    for cluster in ws.clusters():  # type: ignore[attr-defined]
        shutil.rmtree(isolated_root(ws.path, cluster.name).parent, ignore_errors=True)  # type: ignore[attr-defined]


def _accounts() -> set[str]:
    import pwd
    return {entry.pw_name for entry in pwd.getpwall()}


def _remove_accounts_made(ws: object, before: set[str]) -> None:
    """The job accounts a root engine made for the benchmark's clusters (run_as="auto") go too;
    an account that was there before is left alone."""
    import subprocess

    from batchai_jupyter.compute.local.accounts import account_name
    for cluster in ws.clusters():  # type: ignore[attr-defined]
        name = account_name({}, cluster.name)
        if name and name not in before and name in _accounts():
            subprocess.run(["userdel", name], capture_output=True, check=False)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(name: str, value: float, baseline_name: str, baseline: float, target: str) -> None:
    ratio = value / baseline if baseline else float("inf")
    print(f"{name:<44} {value * 1000:9.1f} ms | {baseline_name:<28} {baseline * 1000:9.1f} ms | "
          f"ratio {ratio:6.2f}  (target {target})", flush=True)


def retried_baseline(name: str, attempt: Callable[[int], T], tries: int = 3) -> T | None:
    """A by-hand baseline that can die from noise alone (a loaded machine, a missed peer):
    tried up to `tries` times, each failure reported; None when none worked, so the caller
    reports the ratio as not measured instead of failing the run."""
    for i in range(tries):
        try:
            return attempt(i)
        except (RuntimeError, OSError) as exc:
            print(f"baseline {name!r}: attempt {i + 1} of {tries} failed: {exc}", file=sys.stderr)
    print(f"baseline {name!r} failed {tries} times: its ratio is not measured in this run", flush=True)
    return None

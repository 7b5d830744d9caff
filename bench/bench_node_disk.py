"""Node disk: the second run of a big snapshot starts as fast as a 1-file one; nodes stay small.

    python -m bench.bench_node_disk [--quick]

1. submit -> first line of the job, on a local cluster of one node: the first run of a
   2,000-file snapshot (its tree is built), later runs of it (the tree is there), and runs of a
   1-file snapshot (the baseline). Target: a later run of the 2,000-file snapshot <= 1.2x the
   1-file case. Measured with the jobs running as the engine's user (run_as="engine") and, under
   a root engine, as the cluster's own account (run_as="auto", the default there), whose node
   folders live outside the workspace (compute/local/accounts.py).
2. node bytes after N runs: every run folder kept with copied snapshots (what nodes held before
   cleanup) vs the default (ended runs' folders removed, one tree per snapshot).
3. over ssh (a real sshd in a network namespace, tests/compute/ssh_env.py; skipped with the
   reason without root): the first run of the 2,000-file snapshot on a host (its objects sent,
   small ones in packs, and its tree built) vs `tar -c | ssh host tar -x` of the same files,
   and a later run vs the 1-file one.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._common import median, parse_args, report, temp_workspace

JOB = "print('first line', flush=True)\n"
CLUSTER = "one"


def make_project(root: Path, files: int, file_bytes: int) -> Path:
    root.mkdir(parents=True)
    (root / "job.py").write_text(JOB)
    for i in range(files - 1):
        folder = root / f"pkg{i % 40}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{i}.py").write_bytes(os.urandom(file_bytes // 2).hex().encode()[:file_bytes])
    return root


def node_roots(ws: Any) -> list[Path]:
    """The cluster's node folders: in the workspace, or outside it when its jobs run as their
    own account (isolated_root); the nodes' info["path"] names the ones that are up."""
    from batchai_jupyter.compute.local.accounts import isolated_root
    found = {Path(n.info["path"]) for n in ws.cluster(CLUSTER).nodes() if n.info.get("path")}
    for base in (ws.path / "clusters" / CLUSTER, isolated_root(ws.path, CLUSTER)):
        found |= set((base / "nodes").glob("*"))
    return sorted(p for p in found if p.is_dir())


MODES: set[str] = set()  # how the measured runs' views were made (overlay, reflink, copy)


def first_line_seconds(ws: Any, src: Path) -> float:
    """Seconds from submit to the job's first line in the workspace (the run is awaited)."""
    from batchai_jupyter import JobSpec
    start = time.perf_counter()
    run = ws.experiment("bench").submit(JobSpec(source_directory=src, script="job.py",
                                                keep_node_files=True), cluster=CLUSTER)
    line = next(iter(run.stream()))
    took = time.perf_counter() - start
    assert line == "first line", line
    run.wait_for_completion(show_output=False, timeout=300)
    MODES.update(p.read_text() for root in node_roots(ws) for p in root.glob(f"runs/{run.id}/view.mode"))
    return took


def node_bytes(ws: Any) -> int:
    total = 0
    for root in node_roots(ws):
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if not os.path.islink(path):
                    total += os.lstat(path).st_size
    return total


def runs_then_bytes(src: Path, count: int, keep: bool, options: dict[str, Any]) -> int:
    """Node bytes once `count` runs ended (and the node upkeep had its chance)."""
    from batchai_jupyter import JobSpec
    with temp_workspace() as workspace:
        ws: Any = workspace
        ws.create_cluster(CLUSTER, max_nodes=1, **options)
        exp = ws.experiment("disk")
        runs = [exp.submit(JobSpec(source_directory=src, script="job.py", keep_node_files=keep), cluster=CLUSTER)
                for _ in range(count)]
        for run in runs:
            run.wait_for_completion(show_output=False, timeout=300)
        deadline = time.time() + 30
        while time.time() < deadline and not keep and any(r.glob("runs/*") for r in node_roots(ws)):
            time.sleep(0.2)
        return node_bytes(ws)


@contextmanager
def account_python() -> Iterator[str | None]:
    """A Python the cluster's own account can run (a venv of the system's python3.11 outside
    /root, with this package on its path); None where jobs cannot run as an account here."""
    base_python = Path("/usr/bin/python3.11")
    if os.geteuid() != 0 or shutil.which("useradd") is None or not base_python.exists():
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="bench-disk-python-", dir="/tmp"))
    try:
        base.chmod(0o755)
        subprocess.run([str(base_python), "-m", "venv", "--without-pip", str(base / "venv")], check=True)
        site = next((base / "venv" / "lib").glob("python3*/site-packages"))
        import batchai_jupyter
        (site / "batchai_jupyter_source.pth").write_text(
            f"{Path(batchai_jupyter.__file__).resolve().parents[1]}\n{sysconfig.get_paths()['purelib']}\n")
        yield str(base / "venv" / "bin" / "python")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def made_account(name: str) -> Iterator[None]:
    """The account the engine makes on first use goes with the benchmark (unless it was there)."""
    import pwd
    try:
        pwd.getpwnam(name)
        existed = True
    except KeyError:
        existed = False
    try:
        yield
    finally:
        if not existed:
            subprocess.run(["userdel", name], check=False, capture_output=True)


def latency(name: str, big: Path, one: Path, repeats: int, options: dict[str, Any]) -> None:
    """Part 1 with the cluster's jobs running as `name` says."""
    MODES.clear()
    with temp_workspace() as workspace:
        ws: Any = workspace
        ws.create_cluster(CLUSTER, max_nodes=1, **options)
        first_line_seconds(ws, one)  # the engine starts; not measured
        first = first_line_seconds(ws, big)
        later, single = [], []
        for _ in range(repeats):  # interleaved: a load that comes and goes hits both alike
            later.append(first_line_seconds(ws, big))
            single.append(first_line_seconds(ws, one))
        run_as = ws.cluster(CLUSTER).nodes()[0].info.get("run_as", "?")
        print(f"jobs as {name} ({str(run_as)[:60]}); run views: {', '.join(sorted(MODES))}")
        report(f"later run, {big.name} snapshot", median(later), "first run", first, "< 1")
        report(f"later run, {big.name} snapshot", median(later), "1-file snapshot", median(single), "<= 1.2")


def ssh_runs(big: Path, one: Path, tmp: Path, repeats: int) -> None:
    """Part 3: first and later runs of the big snapshot on an ssh host, next to tar over ssh."""
    from batchai_jupyter import JobSpec
    from tests.compute.ssh_env import SSHHosts, make_ssh_cluster, missing_tools
    why = missing_tools()
    if why:
        print(f"over ssh: not measured ({why})", file=sys.stderr)
        return
    hosts = SSHHosts(tmp / "hosts", count=1).start()
    try:
        with temp_workspace() as workspace:
            ws: Any = workspace
            cluster = make_ssh_cluster(ws, hosts, name="remote", count=1)

            def first_line(src: Path) -> float:
                start = time.perf_counter()
                run = ws.experiment("ssh").submit(JobSpec(source_directory=src, script="job.py"), cluster=cluster)
                assert next(iter(run.stream())) == "first line"
                took = time.perf_counter() - start
                run.wait_for_completion(show_output=False, timeout=300)
                return took

            first_line(one)  # the engine starts and the host is set up; not measured
            first = first_line(big)
            later, single = [], []
            for _ in range(repeats):
                later.append(first_line(big))
                single.append(first_line(one))
            dest = tmp / "tar-dest"
            dest.mkdir()
            start = time.perf_counter()
            subprocess.run(f"tar -C {big} -cf - . | {hosts.ssh_command()} root@{hosts.hosts[0].address} "
                           f"tar -C {dest} -xf -", shell=True, check=True)
            tar = time.perf_counter() - start
        report(f"over ssh: first run, {big.name} snapshot", first, "tar -c | ssh tar -x of the files", tar,
               "reported: objects sent and the tree built")
        report(f"over ssh: later run, {big.name} snapshot", median(later), "1-file snapshot", median(single),
               "<= 1.2")
    finally:
        hosts.stop()


def main() -> None:
    args = parse_args(__doc__)
    # each pair of runs takes ~0.1 s: enough of them that the medians are steady
    files, file_bytes, repeats, count = (2000, 2048, 9, 4) if args.quick else (2000, 4096, 21, 20)
    with tempfile.TemporaryDirectory(prefix="bench-disk-") as tmp, account_python() as python:
        big = make_project(Path(tmp) / f"{files}-file", files, file_bytes)
        one = make_project(Path(tmp) / "one", 1, file_bytes)
        print(f"snapshot: {files} files of {file_bytes} B")
        latency("the engine's user", big, one, repeats, {"run_as": "engine"})
        if python is not None:
            with made_account(f"batchai-{CLUSTER}"):
                latency("the cluster's account", big, one, repeats, {"run_as": "auto", "python": python})
        else:
            print("jobs as the cluster's account: not measured (needs a root engine, useradd and "
                  "/usr/bin/python3.11)", file=sys.stderr)
        ssh_runs(big, one, Path(tmp), max(3, repeats // 3))
        os.environ["BATCHAI_NODE_VIEW"] = "copy"  # as nodes were: a full copy per run, all kept
        try:
            before = runs_then_bytes(big, count, keep=True, options={"run_as": "engine"})
        finally:
            os.environ.pop("BATCHAI_NODE_VIEW", None)
        after = runs_then_bytes(big, count, keep=False, options={"run_as": "engine"})
        ratio = after / before if before else float("inf")
        print(f"node bytes after {count} runs: {before:,} kept copies (before cleanup) | {after:,} "
              f"with cleanup | ratio {ratio:.3f}  (target ~1/{count})", flush=True)


if __name__ == "__main__":
    main()

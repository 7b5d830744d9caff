"""Log latency over ssh: 16 runs at once on 2 ssh hosts, print -> run.stream(), next to bare
`ssh host tail -f` of 16 files written the same way, measured in the same run.

    python -m bench.bench_ssh_stream [--quick]      (16 runs of 5 s; quick: 8 runs of 2 s)
Two real sshd hosts in network namespaces (tests/compute/ssh_env.py; needs root, skipped with
the reason otherwise). A node runs one run at a time, so the 16 runs go to 8 ssh clusters of the
same 2 hosts (8 runs per host). Each job prints a timestamp every 0.1 s and is followed by its
own run.stream() in a thread; the baseline is a writer on the hosts' filesystem appending the
same lines to 16 files while 16 `ssh host tail -f` sessions (8 per host) read them.
Target: p95 <= 0.15 s (moonshot: <= 2x the bare ssh tail). Also printed: the engine's CPU
seconds (utime + stime) over the streamed runs.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter.engine.control import engine_info
from bench._common import median, p95, parse_args, report, temp_workspace
from tests.compute.ssh_env import SSHHosts, make_ssh_cluster, missing_tools

TICKS = """
import sys, time
for i in range(int(sys.argv[1])):
    print(repr(time.time()), flush=True)
    time.sleep(0.1)
"""
WRITER = """
import sys, time
files = [open(p, "a", buffering=1) for p in sys.argv[2:]]
for i in range(int(sys.argv[1])):
    for fh in files:
        fh.write(repr(time.time()) + "\\n")
    time.sleep(0.1)
"""


READY = "ready"  # the first line of each tailed file: its ssh session is up


def collect(lines: object, delays: list[float], lock: threading.Lock, limit: int,
            ready: threading.Semaphore | None = None) -> None:
    got = []
    for line in lines:  # type: ignore[attr-defined]
        text = line.strip() if isinstance(line, str) else line.decode().strip()
        if text == READY and ready is not None:
            ready.release()
        elif text:
            got.append(time.time() - float(text))
        if len(got) >= limit:
            break
    with lock:
        delays.extend(got)


def bare_tail(hosts: SSHHosts, folder: Path, runs: int, ticks: int) -> list[float]:
    """Delays of `ssh host tail -f` over `runs` files (half per host) a local writer appends to."""
    files = [folder / f"tail-{i}.txt" for i in range(runs)]
    for path in files:
        path.write_text(READY + "\n")
    delays: list[float] = []
    lock = threading.Lock()
    ready = threading.Semaphore(0)
    tails = [subprocess.Popen(["ssh", "-i", hosts.key_file, "-o", f"UserKnownHostsFile={hosts.known_hosts}",
                               "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                               f"root@{hosts.hosts[i % 2].address}", "tail", "-n", "+1", "-f", str(path)],
                              stdout=subprocess.PIPE) for i, path in enumerate(files)]
    threads = [threading.Thread(target=collect, args=(tail.stdout, delays, lock, ticks, ready))
               for tail in tails]
    try:
        for thread in threads:
            thread.start()
        for _ in tails:  # every ssh session is up before the first timed line (not timed: connecting)
            ready.acquire(timeout=60)
        subprocess.run([sys.executable, "-c", WRITER, str(ticks), *map(str, files)], check=True)
        for thread in threads:
            thread.join(timeout=30)
    finally:
        for tail in tails:
            tail.kill()
            tail.wait()
    return delays


def through_batchai(ws: bai.Workspace, src: Path, clusters: list[str], ticks: int) -> list[float]:
    delays: list[float] = []
    lock = threading.Lock()
    exp = ws.experiment("ssh-stream")
    runs = [exp.submit(bai.JobSpec(source_directory=src, script="ticks.py", arguments=[str(ticks)]),
                       cluster=name) for name in clusters for _ in range(2)]
    threads = [threading.Thread(target=collect, args=(run.stream(), delays, lock, ticks)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for run in runs:
        details = run.wait_for_completion(timeout=120, raise_on_error=False)
        if details["status"] != "Completed":
            raise RuntimeError(f"run {run.id} ended {details['status']}: {details.get('error')}")
    return delays


def cpu_seconds(pid: object) -> float:
    """A process's CPU seconds so far, utime + stime (0 where it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_cpu(ws: bai.Workspace) -> float:
    return cpu_seconds(engine_info(ws.path).get("pid"))


def watcher_cpu(hosts: SSHHosts) -> float:
    """CPU seconds of the push watchers living on the hosts (node/push.py)."""
    total = 0.0
    for host in hosts.hosts:
        for pid in hosts.pids(host):
            try:
                if b"batchai_jupyter.node.push" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    total += cpu_seconds(pid)
            except OSError:
                continue
    return total


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    why = missing_tools()
    if why:
        print(f"skipped: ssh hosts unavailable: {why}")
        return 0
    runs, ticks = (8, 20) if args.quick else (16, 50)
    with tempfile.TemporaryDirectory(prefix="bench-sshs-") as tmp:
        hosts = SSHHosts(Path(tmp) / "hosts", count=2).start()
        try:
            src = Path(tmp) / "src"
            src.mkdir()
            (src / "ticks.py").write_text(TICKS)
            with temp_workspace() as ws:
                clusters = [make_ssh_cluster(ws, hosts, name=f"ssh{i}", count=2,
                                             node_root=f"{ws.path}/sshnodes/ssh{i}/{{host}}")
                            for i in range(runs // 2)]
                warm = [ws.experiment("warm").submit(bai.JobSpec(source_directory=src, command="true",
                                                                 node_count=2), cluster=name)
                        for name in clusters]
                for run in warm:  # every node provisioned, not timed
                    run.wait_for_completion(timeout=300)
                cpu = engine_cpu(ws)
                ours = through_batchai(ws, src, clusters, ticks)
                cpu = engine_cpu(ws) - cpu
                watchers = watcher_cpu(hosts)  # they live on 10 s after their last run
                bare = bare_tail(hosts, Path(tmp), runs, ticks)
                report(f"{runs} runs on 2 ssh hosts: print -> stream p95", p95(ours),
                       f"{runs} x ssh host tail -f, p95", p95(bare), "<= 0.15 s absolute; moonshot <= 2")
                print(f"ssh: {len(ours)} lines, median {median(ours) * 1000:.1f} ms, max {max(ours) * 1000:.1f} ms;"
                      f" bare tail median {median(bare) * 1000:.1f} ms; engine CPU over the runs {cpu:.2f} s, "
                      f"watchers' CPU on the hosts {watchers:.2f} s",
                      flush=True)
        finally:
            hosts.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

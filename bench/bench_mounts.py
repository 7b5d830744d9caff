"""Azure volumes: reading a mounted container (rclone FUSE) and a staged one, vs the SDK by hand.

    python -m bench.bench_mounts [--quick]       (BENCH_QUICK=1 works too)

A job reads every file of a container volume (many small files and one large one) and reports
how long the reads took. It runs twice on the local cluster: with the volume mounted through rclone
(FUSE) and staged (downloaded before the job; the stager's time is added). The baseline, measured
in the same run against the same Azurite: our datastore's download of the same files into a
folder (what as_download() does). Full mode: 400 x 64 KB + 64 MB; quick: 50 x 16 KB + 8 MB.
Needs Azurite (ci/setup-datastores.sh) and, for the FUSE half, /dev/fuse, fusermount3 and rclone.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench._common import parse_args, report, temp_workspace
from bench.bench_datastores import ACCOUNT, KEY, make_files, start_azurite, timed

READER = """
import os, time
root = os.path.join(os.environ["AZ_BATCHAI_JOB_MOUNT_ROOT"], "data")
start = time.perf_counter()
total = 0
for dirpath, _dirs, files in os.walk(root):
    for name in files:
        with open(os.path.join(dirpath, name), "rb") as fh:
            while chunk := fh.read(1 << 20):
                total += len(chunk)
print(f"read {total} bytes in {time.perf_counter() - start:.4f}s")
"""


def run_reader(ws, store, src: Path, mode: str) -> float:
    """The job's read time, plus the stager's download time when staged."""
    import batchai_jupyter as bai
    os.environ["BATCHAI_MOUNT_MODE"] = mode
    try:
        run = ws.experiment("bench").submit(bai.JobSpec(source_directory=src, script="read.py",
                                                        mounts={"data": store}))
    finally:
        os.environ.pop("BATCHAI_MOUNT_MODE", None)
    run.wait_for_completion(show_output=False, timeout=600)
    text = "".join(run.stream(follow=False))
    seconds = float(re.search(r"read \d+ bytes in ([0-9.]+)s", text).group(1))
    staged = re.search(r"files downloaded \(([0-9.]+)s\)", text)
    return seconds + (float(staged.group(1)) if staged else 0.0)


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    from batchai_jupyter.datastores.mount_mode import fuse_available
    count, small, big = (50, 16 << 10, 8 << 20) if args.quick else (400, 64 << 10, 64 << 20)
    with tempfile.TemporaryDirectory(prefix="bench-mounts-") as tmp:
        proc, port = start_azurite(Path(tmp) / "azurite")
        try:
            with temp_workspace() as ws:
                store = ws.register_datastore(  # type: ignore[attr-defined]
                    "data", kind="azure_blob", account_name=ACCOUNT, container="benchmounts", account_key=KEY,
                    endpoint=f"http://127.0.0.1:{port}/{ACCOUNT}", create_if_not_exists=True)
                data = Path(tmp) / "data"
                size = make_files(data / "small", count, small) + make_files(data / "big", 1, big)
                store.upload(data, show_progress=False)
                src = Path(tmp) / "src"
                src.mkdir()
                (src / "read.py").write_text(READER)
                baseline = timed(lambda: store.download(Path(tmp) / "down", show_progress=False))
                print(f"{count} x {small >> 10} KB + {big >> 20} MB = {size / 1e6:.1f} MB")
                staged = run_reader(ws, store, src, "staged")
                report("staged volume: download + job's reads", staged, "datastore download", baseline,
                       "<= 1.5")
                missing = fuse_available(os.pathsep.join([os.path.dirname(sys.executable),
                                                          os.environ.get("PATH", "")]))
                if missing:
                    print(f"FUSE half not measured: {missing}")
                else:
                    fuse = run_reader(ws, store, src, "fuse")
                    report("FUSE volume (rclone): job's reads", fuse, "datastore download", baseline, "<= 3")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return 0


if __name__ == "__main__":
    start = time.time()
    code = main()
    print(f"({time.time() - start:.1f}s)")
    sys.exit(code)

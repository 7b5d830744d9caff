"""Datastore transfer speed against Azurite: ours vs a naive one-file-at-a-time SDK loop.

    python bench/bench_datastores.py [--quick]       (BENCH_QUICK=1 works too)

Full mode moves ~1 GB as 1,000 files and ~1 GB as one file, up and down; quick mode ~13 MB as
200 files and 16 MB as one file. The baseline is measured in the same run, over the same SDK
and server: a loop that uploads (download_blob().readinto for downloads) one file after the
other with the SDK's defaults. Target: >= 3x the loop on many small files; big-file MB/s shown.
Needs Azurite (ci/setup-datastores.sh).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import parse_args, temp_workspace

REPO = Path(__file__).resolve().parents[1]
AZURITE = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def start_azurite(location: Path) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(AZURITE), "--silent", "--disableTelemetry", "--skipApiVersionCheck",
                             "--loose", "--location", str(location), "--blobHost", "127.0.0.1",
                             "--blobPort", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("Azurite did not start")


def make_files(root: Path, count: int, size: int) -> int:
    root.mkdir(parents=True)
    block = os.urandom(min(size, 1 << 20))
    for i in range(count):
        with open(root / f"part-{i:05d}.bin", "wb") as fh:
            left = size
            while left > 0:
                fh.write(block[:left])
                left -= len(block)
    return count * size


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def naive_upload(container, src: Path, prefix: str) -> None:
    for path in sorted(src.iterdir()):
        with open(path, "rb") as fh:
            container.upload_blob(f"{prefix}/{path.name}", fh, overwrite=True)


def naive_download(container, prefix: str, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for blob in container.list_blobs(name_starts_with=prefix + "/"):
        with open(dest / blob.name.rsplit("/", 1)[1], "wb") as fh:
            container.download_blob(blob.name).readinto(fh)


class ServerClock:
    """CPU seconds the Azurite process used: shows when the server, not the client, is the limit."""

    def __init__(self, pid: int):
        self.pid = pid

    def __call__(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compare(name: str, nbytes: int, clock: ServerClock, ours_fn, naive_fn, target: str) -> float:
    c0 = clock()
    naive = timed(naive_fn)
    c1 = clock()
    ours = timed(ours_fn)
    server = clock() - c1
    mb = nbytes / 1e6
    print(f"{name:<30} ours {ours:7.2f} s {mb / ours:8.1f} MB/s | naive loop {naive:7.2f} s "
          f"{mb / naive:8.1f} MB/s | ratio {naive / ours:5.2f}x  (target {target}) | "
          f"Azurite CPU {server:5.2f} s (naive {c1 - c0:5.2f} s): ceiling {naive / max(server, 1e-9):4.1f}x",
          flush=True)
    return naive / ours


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    if not AZURITE.exists():
        print(f"SKIP: Azurite is not installed ({AZURITE}); run ci/setup-datastores.sh")
        return 0
    from azure.storage.blob import ContainerClient
    many, many_size, big = (200, 64 * 1024, 16 << 20) if args.quick else (1000, 1 << 20, 1 << 30)
    with tempfile.TemporaryDirectory(prefix="bench-ds-") as tmp_name, temp_workspace() as ws:
        tmp = Path(tmp_name)
        proc, port = start_azurite(tmp / "azurite")
        try:
            endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
            ds = ws.register_datastore("bench", kind="azure_blob", account_name=ACCOUNT, container="bench",
                                       account_key=KEY, endpoint=endpoint, create_if_not_exists=True)
            naive = ContainerClient(account_url=endpoint, container_name="bench",
                                    credential={"account_name": ACCOUNT, "account_key": KEY})
            small_bytes = make_files(tmp / "many", many, many_size)
            big_bytes = make_files(tmp / "big", 1, big)
            print(f"datastore bench ({'quick' if args.quick else 'full'}): {many} files x "
                  f"{many_size // 1024} KiB, and 1 file of {big >> 20} MiB, against Azurite", flush=True)
            clock = ServerClock(proc.pid)
            compare(f"upload {many} files", small_bytes, clock,
                    lambda: ds.upload(tmp / "many", "ours-many", show_progress=False),
                    lambda: naive_upload(naive, tmp / "many", "naive-many"), ">= 3x")
            compare(f"download {many} files", small_bytes, clock,
                    lambda: ds.download(tmp / "do1", prefix="ours-many/", show_progress=False),
                    lambda: naive_download(naive, "naive-many", tmp / "dn1"), ">= 3x")
            shutil.rmtree(tmp / "dn1")
            shutil.rmtree(tmp / "do1")
            compare(f"upload 1 file of {big >> 20} MiB", big_bytes, clock,
                    lambda: ds.upload(tmp / "big", "ours-big", show_progress=False),
                    lambda: naive_upload(naive, tmp / "big", "naive-big"), "MB/s reported")
            compare(f"download 1 file of {big >> 20} MiB", big_bytes, clock,
                    lambda: ds.download(tmp / "do2", prefix="ours-big/", show_progress=False),
                    lambda: naive_download(naive, "naive-big", tmp / "dn2"), "MB/s reported")
            print("ceiling = naive wall time / Azurite CPU time in our run: the most any client can "
                  "gain while the single-threaded server is the bottleneck", flush=True)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())

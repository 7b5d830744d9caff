"""Storage servers for the datastore tests, each on loopback with its own port and folder.

- Azurite (the Azure Blob emulator from npm, installed by ci/setup-datastores.sh) — real.
- tests/datastores/file_emulator.py — a protocol-level EMULATOR of the Azure Files REST API
  (no public Azure Files emulator exists); the official SDK talks to it over HTTP.
A server that cannot start makes its tests skip with the reason; nothing is faked.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AZURITE = REPO / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
KINDS = ("local", "azure_blob", "azure_file")
# fast retries in tests: a stopped server is reported in about a second, not minutes
FAST = {"max_retries": 2, "retry_backoff_seconds": 0.1, "timeout_seconds": 10}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class Server:
    """A storage server subprocess that a test may stop and start again on the same port/data."""

    def __init__(self, name: str, argv: list[str], port: int):
        self.name, self.argv, self.port = name, argv, port
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def start(self) -> Server:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        try:
            _wait_port(self.port, self.proc)
        except RuntimeError as exc:
            err = self.proc.stderr.read().decode(errors="replace")[-500:] if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"{self.name}: {exc} {err}") from None
        return self

    def stop(self) -> None:
        """Kill it at once (what a crash or a network cut looks like to the client)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None


def _azurite(tmp: Path) -> Server:
    if not AZURITE.exists():
        pytest.skip(reason=f"Azurite is not installed ({AZURITE} missing): run ci/setup-datastores.sh")
    if shutil.which("node") is None:
        pytest.skip(reason="Azurite needs node, which is not installed")
    port = free_port()
    argv = [str(AZURITE), "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
            "--location", str(tmp), "--blobHost", "127.0.0.1", "--blobPort", str(port)]
    try:
        return Server("azurite", argv, port).start()
    except RuntimeError as exc:
        pytest.skip(reason=f"Azurite did not start: {exc}")


def _file_emulator(tmp: Path) -> Server:
    port = free_port()
    argv = [sys.executable, str(Path(__file__).with_name("file_emulator.py")), "--port", str(port),
            "--root", str(tmp)]
    try:
        return Server("file emulator", argv, port).start()
    except RuntimeError as exc:
        pytest.skip(reason=f"the Azure Files emulator did not start: {exc}")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pytest.importorskip("azure.storage.blob", reason="azure-storage-blob is not installed")
    server = _azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


@pytest.fixture
def private_azurite(tmp_path: Path) -> Iterator[Server]:
    """An Azurite of this test alone: fault tests stop and restart it."""
    pytest.importorskip("azure.storage.blob", reason="azure-storage-blob is not installed")
    server = _azurite(tmp_path / "azurite")
    yield server
    server.stop()


@pytest.fixture
def private_file_emulator(tmp_path: Path) -> Iterator[Server]:
    """An Azure Files emulator of this test alone: fault tests stop and restart it."""
    pytest.importorskip("azure.storage.fileshare", reason="azure-storage-file-share is not installed")
    server = _file_emulator(tmp_path / "files")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def file_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pytest.importorskip("azure.storage.fileshare", reason="azure-storage-file-share is not installed")
    server = _file_emulator(tmp_path_factory.mktemp("files"))
    yield server
    server.stop()


def unique(prefix: str = "c") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def register(ws, kind: str, request: pytest.FixtureRequest, tmp_path: Path, name: str = "store", **extra):
    """A fresh datastore of `kind` in ws: its own folder, container or share."""
    if kind == "local":
        folder = tmp_path / f"nfs-{name}"
        folder.mkdir(exist_ok=True)
        return ws.register_datastore(name, kind="local", path=str(folder),
                                     **{k: v for k, v in extra.items() if k == "max_concurrency"})
    server = request.getfixturevalue("azurite" if kind == "azure_blob" else "file_emulator")
    root = "container" if kind == "azure_blob" else "share"
    options = {"account_name": ACCOUNT, root: unique(), "account_key": KEY,
               "endpoint": server.endpoint, "create_if_not_exists": True, **FAST}
    options.update(extra)
    return ws.register_datastore(name, kind=kind, **options)


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, ws, tmp_path: Path):
    """The conformance suite's datastore: the same tests run on every kind."""
    return register(ws, request.param, request, tmp_path)

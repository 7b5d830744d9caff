"""Faults: storage stopped mid-transfer, wrong key, expired SAS, missing container/share.

Every failure is a DatastoreError that names the path and never contains the secret."""
from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.datastores import Callback

from .conftest import ACCOUNT, FAST, KEY, register, unique

BIG = 24 * 1024 * 1024
WRONG_KEY = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc9PQ=="


class StopAfter(Callback):
    """Stops the storage server once `limit` bytes moved: a crash in the middle of a transfer."""

    def __init__(self, server, limit: int):
        super().__init__()
        self.server, self.limit, self.fired = server, limit, False

    def on_advance(self, nbytes: int, done: int) -> None:
        if done >= self.limit and not self.fired:
            self.fired = True
            os.killpg(self.server.proc.pid, signal.SIGTERM)


def _blob_store(ws, server, **extra):
    return ws.register_datastore("blob", kind="azure_blob", account_name=ACCOUNT, container=unique(),
                                 account_key=KEY, endpoint=server.endpoint, create_if_not_exists=True,
                                 block_size=1024 * 1024, **{**FAST, **extra})


def _private_store(ws, request, kind: str):
    """A datastore on a server of this test alone (Azurite, or the Azure Files emulator)."""
    if kind == "azure_blob":
        server = request.getfixturevalue("private_azurite")
        return _blob_store(ws, server), server
    server = request.getfixturevalue("private_file_emulator")
    return ws.register_datastore("share", kind="azure_file", account_name=ACCOUNT, share=unique(),
                                 account_key=KEY, endpoint=server.endpoint, create_if_not_exists=True,
                                 **FAST), server


def _restart(server) -> None:
    server.proc.wait(30)
    server.proc = None
    server.start()


@pytest.mark.parametrize("kind", ["azure_blob", "azure_file"])
def test_server_stopped_mid_upload_leaves_no_partial_file(ws, request, tmp_path: Path, kind: str) -> None:
    store, server = _private_store(ws, request, kind)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(os.urandom(BIG))
    stopper = StopAfter(server, 3 * 1024 * 1024)
    with pytest.raises(bai.DatastoreError) as err:
        store.upload(tmp_path / "src", "up", show_progress=stopper)
    assert stopper.fired and stopper.done < BIG
    assert "up/big.bin" in str(err.value) and kind in str(err.value)
    assert KEY not in str(err.value)
    _restart(server)
    assert store.list() == []  # uncommitted blocks / a hidden temporary file: nothing to see
    store.upload(tmp_path / "src", "up", show_progress=False)  # and a retry later succeeds
    assert store.list() == ["up/big.bin"]


@pytest.mark.parametrize("kind", ["azure_blob", "azure_file"])
def test_server_stopped_mid_download_leaves_no_partial_file(ws, request, tmp_path: Path, kind: str) -> None:
    store, server = _private_store(ws, request, kind)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(os.urandom(BIG))
    store.upload(tmp_path / "src", "dl", show_progress=False)
    stopper = StopAfter(server, 3 * 1024 * 1024)
    with pytest.raises(bai.DatastoreError) as err:
        store.download(tmp_path / "out", prefix="dl", show_progress=stopper)
    assert stopper.fired and "dl/big.bin" in str(err.value)
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_stopped_server_is_retried_then_reported(ws, private_azurite, tmp_path: Path) -> None:
    store = _blob_store(ws, private_azurite)
    private_azurite.stop()
    with pytest.raises(bai.DatastoreError, match="cannot reach"):
        store.list()


@pytest.mark.parametrize("kind", ["azure_blob", "azure_file"])
def test_wrong_key_is_a_clear_error_without_the_key(ws, request, tmp_path: Path, kind: str) -> None:
    good = register(ws, kind, request, tmp_path, name="good")
    root = "container" if kind == "azure_blob" else "share"
    bad = ws.register_datastore("bad", kind=kind, account_name=ACCOUNT, account_key=WRONG_KEY,
                                endpoint=good.config["endpoint"], **{root: good.config[root]}, **FAST)
    with pytest.raises(bai.DatastoreError, match="authentication failed") as err:
        bad.list()
    assert WRONG_KEY not in str(err.value) and WRONG_KEY not in repr(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__


@pytest.mark.parametrize("kind", ["azure_blob", "azure_file"])
def test_expired_sas_is_a_clear_error_without_the_token(ws, request, tmp_path: Path, kind: str) -> None:
    good = register(ws, kind, request, tmp_path, name="good")
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    if kind == "azure_blob":
        from azure.storage.blob import generate_container_sas
        sas = generate_container_sas(ACCOUNT, good.config["container"], account_key=KEY, permission="rl",
                                     expiry=past, start=past - timedelta(hours=1))
        root = {"container": good.config["container"]}
    else:
        from azure.storage.fileshare import generate_share_sas
        sas = generate_share_sas(ACCOUNT, good.config["share"], account_key=KEY, permission="rl",
                                 expiry=past, start=past - timedelta(hours=1))
        root = {"share": good.config["share"]}
    old = ws.register_datastore("old", kind=kind, account_name=ACCOUNT, sas_token=sas,
                                endpoint=good.config["endpoint"], **root, **FAST)
    with pytest.raises(bai.DatastoreError, match="expired") as err:
        old.download(tmp_path / "o", show_progress=False)
    signature = sas.split("sig=")[1].split("&")[0]
    assert signature not in str(err.value) and sas not in str(err.value)


@pytest.mark.parametrize("kind", ["azure_blob", "azure_file"])
def test_missing_container_or_share(ws, request, tmp_path: Path, kind: str) -> None:
    server = request.getfixturevalue("azurite" if kind == "azure_blob" else "file_emulator")
    root = "container" if kind == "azure_blob" else "share"
    name = unique()
    store = ws.register_datastore("gone", kind=kind, account_name=ACCOUNT, account_key=KEY,
                                  endpoint=server.endpoint, **{root: name}, **FAST)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.txt").write_text("x")
    with pytest.raises(bai.DatastoreError, match=f"{root} '{name}'.*does not exist"):
        store.upload(tmp_path / "src", "p", overwrite=True, show_progress=False)
    with pytest.raises(bai.DatastoreError, match="does not exist"):
        store.list()


@pytest.mark.parametrize("kind", ["azure_blob", "azure_file"])
def test_node_credentials_are_narrow(ws, request, tmp_path: Path, kind: str) -> None:
    """A read credential cannot write, a write credential cannot read or list."""
    from batchai_jupyter.datastores.credentials import datastore_for_node
    store = register(ws, kind, request, tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.txt").write_text("x")
    store.upload(tmp_path / "src", "in", show_progress=False)

    def node(access: str):
        return datastore_for_node({"name": store.name, "kind": kind, "config": store.node_config(),
                                   "credential": store.node_credential(access, 600)})
    reader, writer = node("read"), node("write")
    assert reader.fetch_tree("in", str(tmp_path / "got")) == str(tmp_path / "got")
    assert (tmp_path / "got" / "x.txt").read_text() == "x"
    with pytest.raises(bai.DatastoreError, match="not allowed"):
        reader.push_tree(str(tmp_path / "src"), "out")
    assert writer.push_tree(str(tmp_path / "src"), "out") == 1
    with pytest.raises(bai.DatastoreError, match="not allowed"):
        writer.list()
    assert store.list("out/") == ["out/x.txt"]
    assert KEY not in str(store.node_credential("read", 600))


def test_short_outage_is_ridden_out_by_retries(ws, private_azurite, tmp_path: Path) -> None:
    """Retries back off long enough for a server that comes back within a few seconds."""
    import threading
    store = _blob_store(ws, private_azurite, max_retries=8, retry_backoff_seconds=0.3)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.txt").write_text("still here")
    store.upload(tmp_path / "src", "p", show_progress=False)
    os.killpg(private_azurite.proc.pid, signal.SIGTERM)
    private_azurite.proc.wait(30)
    private_azurite.proc = None
    comeback = threading.Timer(0.5, private_azurite.start)
    comeback.start()
    try:
        assert store.list() == ["p/x.txt"]
    finally:
        comeback.join()


@pytest.mark.parametrize("kind", ["azure_blob", "azure_file"])
def test_every_kind_of_retry_gets_the_configured_count(kind: str) -> None:
    """Connection, read and status retries each get max_retries (the SDK caps each at 3 otherwise)."""
    from batchai_jupyter.datastores.azure_common import client_options
    if kind == "azure_blob":
        from azure.storage.blob import ExponentialRetry
    else:
        from azure.storage.fileshare import ExponentialRetry
    policy = client_options({"max_retries": 8, "retry_backoff_seconds": 0.3}, ExponentialRetry)["retry_policy"]
    assert (policy.total_retries, policy.connect_retries, policy.read_retries, policy.status_retries) == (8, 8, 8, 8)
    first, later = policy.get_backoff_time({"count": 1}), policy.get_backoff_time({"count": 4})
    assert 0.24 <= first <= 0.36 and 1.9 <= later <= 2.9

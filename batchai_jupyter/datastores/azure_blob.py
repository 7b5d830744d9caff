"""Azure Blob Storage as a datastore (azure-storage-blob).

Large files go up in blocks (Put Block + Put Block List) with several blocks in flight; a blob
appears under its name only when its block list is committed, so an upload that dies midway
leaves nothing visible. Nodes get a container SAS: read+list for inputs, create+write for outputs.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from ..errors import DatastoreError
from .azure_common import (
    INSTALL_HINT,
    client_options,
    explain,
    sas_expiry,
    sas_start,
    sdk_credential,
    validate_azure_options,
)
from .base import Advance, Datastore

BLOCK = 8 << 20  # measured against Azurite: fewer, larger blocks cost the server less


def _sdk() -> Any:
    try:
        from azure.storage import blob
    except ImportError:
        raise DatastoreError(f"kind='azure_blob' needs azure-storage-blob: {INSTALL_HINT}") from None
    return blob


class AzureBlobDatastore(Datastore):
    kind = "azure_blob"

    def __init__(self, name: str, config: dict[str, Any], credential: dict[str, Any] | None = None):
        super().__init__(name, config, credential)
        self._client: Any = None
        self._lock = threading.Lock()
        self.block_size = int(self.config.get("block_size") or BLOCK)

    @classmethod
    def validate_options(cls, name: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return validate_azure_options(cls.kind, name, options, "container", "blob")

    def describe(self) -> str:
        return f"account={self.config['account_name']!r}, container={self.config['container']!r}"

    @property
    def container(self) -> Any:
        """One ContainerClient per datastore object, shared by the transfer threads."""
        with self._lock:
            if self._client is None:
                blob = _sdk()
                self._client = blob.ContainerClient(
                    account_url=self.config["endpoint"], container_name=self.config["container"],
                    credential=sdk_credential(self.config, self._credential),
                    max_block_size=self.block_size, max_single_put_size=self.block_size,
                    max_single_get_size=self.block_size, max_chunk_get_size=self.block_size,
                    **client_options(self.config, blob.ExponentialRetry))
            return self._client

    def _error(self, exc: BaseException, op: str, path: str) -> DatastoreError:
        if isinstance(exc, DatastoreError):
            return exc
        where = f"{self.config['container']!r} in account {self.config['account_name']!r}"
        reason = self.scrub(explain(exc, "container", where))
        return DatastoreError(f"{op} of {path!r} on datastore {self.name!r} "
                              f"(azure_blob container {self.config['container']!r}) failed: {reason}")

    def _file_concurrency(self, size: int) -> int:
        return min(4, self.max_concurrency) if size > 2 * self.block_size else 1

    # -- primitives ------------------------------------------------------------------------------
    def _iter_files(self, prefix: str) -> Iterator[tuple[str, int]]:
        for item in self.container.list_blobs(name_starts_with=prefix or None):
            yield item.name, int(item.size or 0)

    def _exists(self, path: str) -> bool:
        return bool(self.container.get_blob_client(path).exists())

    def _put(self, local: str, path: str, size: int, advance: Advance) -> None:
        hook = _hook(advance)
        with open(local, "rb") as fh:
            self.container.upload_blob(path, fh, length=size, overwrite=True,
                                       max_concurrency=self._file_concurrency(size), progress_hook=hook)

    def _get(self, path: str, local: str, size: int, advance: Advance) -> None:
        stream = self.container.download_blob(path, max_concurrency=self._file_concurrency(size),
                                              progress_hook=_hook(advance))
        with open(local, "wb") as fh:
            stream.readinto(fh)

    # -- management ------------------------------------------------------------------------------
    def create_root(self) -> None:
        """Create the container unless it exists (register_datastore(create_if_not_exists=True))."""
        from azure.core.exceptions import ResourceExistsError
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass
        except Exception as exc:  # noqa: BLE001 — any SDK failure becomes one DatastoreError, secrets scrubbed
            raise self._error(exc, "create", self.config["container"]) from None

    def node_credential(self, access: str, expiry_seconds: float) -> dict[str, Any]:
        key = self._credential.get("account_key")
        if not key:  # a SAS given at registration cannot be narrowed without the key
            return {"sas_token": self._credential.get("sas_token", "")}
        blob = _sdk()
        perms = {"read": blob.ContainerSasPermissions(read=True, list=True),
                 "write": blob.ContainerSasPermissions(write=True, add=True, create=True),
                 "mount": blob.ContainerSasPermissions(read=True, list=True, write=True, add=True,
                                                       create=True, delete=True)}[access]
        sas = blob.generate_container_sas(self.config["account_name"], self.config["container"],
                                          account_key=key, permission=perms,
                                          expiry=sas_expiry(expiry_seconds), start=sas_start())
        return {"sas_token": sas}


def _hook(advance: Advance) -> Any:
    """SDK progress (cumulative bytes of one file) -> our increments."""
    last = [0]
    lock = threading.Lock()

    def hook(current: int, _total: int | None) -> None:
        with lock:
            delta, last[0] = current - last[0], max(last[0], current)
        if delta > 0:
            advance(delta)
    return hook

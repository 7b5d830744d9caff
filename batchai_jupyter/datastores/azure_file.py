"""An Azure file share as a datastore (azure-storage-file-share).

A file share shows a file as soon as it is created, while its ranges are still being written;
so an upload goes to a hidden temporary name and is renamed into place when complete (Rename
File), and a failed upload never shows a partial file under its final name. Nodes get a share
SAS: read+list for inputs, create+write(+delete, for the rename) for outputs.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import DatastoreError
from .azure_blob import _hook
from .azure_common import (
    INSTALL_HINT,
    client_options,
    explain,
    sas_expiry,
    sas_start,
    sdk_credential,
    validate_azure_options,
)
from .base import TMP_MARK, Advance, Datastore, tmp_name

log = logging.getLogger(__name__)

RANGE = 4 << 20  # the largest range one Put Range accepts


def _sdk() -> Any:
    try:
        import azure.storage.fileshare as share
    except ImportError:
        raise DatastoreError(f"kind='azure_file' needs azure-storage-file-share: {INSTALL_HINT}") from None
    return share


class AzureFileDatastore(Datastore):
    kind = "azure_file"

    def __init__(self, name: str, config: dict[str, Any], credential: dict[str, Any] | None = None):
        super().__init__(name, config, credential)
        self._client: Any = None
        self._lock = threading.Lock()
        self._dirs: set[str] = set()

    @classmethod
    def validate_options(cls, name: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        return validate_azure_options(cls.kind, name, options, "share", "file")

    def describe(self) -> str:
        return f"account={self.config['account_name']!r}, share={self.config['share']!r}"

    @property
    def share(self) -> Any:
        with self._lock:
            if self._client is None:
                sdk = _sdk()
                self._client = sdk.ShareClient(
                    account_url=self.config["endpoint"], share_name=self.config["share"],
                    credential=sdk_credential(self.config, self._credential),
                    max_range_size=RANGE, max_single_get_size=RANGE, max_chunk_get_size=RANGE,
                    **client_options(self.config, sdk.ExponentialRetry))
            return self._client

    def _error(self, exc: BaseException, op: str, path: str) -> DatastoreError:
        if isinstance(exc, DatastoreError):
            return exc
        where = f"{self.config['share']!r} in account {self.config['account_name']!r}"
        reason = self.scrub(explain(exc, "share", where))
        return DatastoreError(f"{op} of {path!r} on datastore {self.name!r} "
                              f"(azure_file share {self.config['share']!r}) failed: {reason}")

    def _file_concurrency(self, size: int) -> int:
        return min(4, self.max_concurrency) if size > 2 * RANGE else 1

    # -- primitives ------------------------------------------------------------------------------
    def _iter_files(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Walk the directory tree, entering only folders the prefix can match."""
        from azure.core.exceptions import ResourceNotFoundError
        stack = [""]
        while stack:
            folder = stack.pop()
            try:
                items = list(self.share.get_directory_client(folder).list_directories_and_files())
            except ResourceNotFoundError as exc:
                if folder and getattr(exc, "error_code", "") in ("ResourceNotFound", "ParentNotFound"):
                    continue  # removed while we walked
                raise
            for item in sorted(items, key=lambda i: i["name"]):
                rel = f"{folder}/{item['name']}" if folder else item["name"]
                if item.get("is_directory"):
                    if (rel + "/").startswith(prefix) or prefix.startswith(rel + "/"):
                        stack.append(rel)
                elif TMP_MARK not in item["name"] and rel.startswith(prefix):
                    yield rel, int(item.get("size") or 0)

    def _exists(self, path: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError
        try:
            self.share.get_file_client(path).get_file_properties()
            return True
        except ResourceNotFoundError:
            return False

    def _ensure_dirs(self, path: str) -> None:
        from azure.core.exceptions import ResourceExistsError
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            folder = "/".join(parts[:i])
            with self._lock:
                if folder in self._dirs:
                    continue
            try:
                self.share.get_directory_client(folder).create_directory()
            except ResourceExistsError:
                pass
            with self._lock:
                self._dirs.add(folder)

    def _put(self, local: str, path: str, size: int, advance: Advance) -> None:
        self._ensure_dirs(path)
        tmp = self.share.get_file_client(tmp_name(path))
        committed = False
        try:
            with open(local, "rb") as fh:
                tmp.upload_file(fh, length=size, max_concurrency=self._file_concurrency(size),
                                progress_hook=_hook(advance))
            tmp.rename_file(path, overwrite=True)
            committed = True
        finally:
            if not committed:
                try:
                    tmp.delete_file()
                except Exception as exc:  # noqa: BLE001 — the server may be gone; a hidden temp name is harmless
                    log.debug("temporary file of %s not removed: %s", path, exc)

    def _get(self, path: str, local: str, size: int, advance: Advance) -> None:
        stream = self.share.get_file_client(path).download_file(
            max_concurrency=self._file_concurrency(size), progress_hook=_hook(advance))
        with open(local, "wb") as fh:
            stream.readinto(fh)

    # -- management ------------------------------------------------------------------------------
    def create_root(self) -> None:
        from azure.core.exceptions import ResourceExistsError
        try:
            self.share.create_share()
        except ResourceExistsError:
            pass
        except Exception as exc:  # noqa: BLE001 — any SDK failure becomes one DatastoreError, secrets scrubbed
            raise self._error(exc, "create", self.config["share"]) from None

    def node_credential(self, access: str, expiry_seconds: float) -> dict[str, Any]:
        key = self._credential.get("account_key")
        if not key:
            return {"sas_token": self._credential.get("sas_token", "")}
        sdk = _sdk()
        perms = {"read": sdk.ShareSasPermissions(read=True, list=True),
                 "write": sdk.ShareSasPermissions(create=True, write=True, delete=True),
                 "mount": sdk.ShareSasPermissions(read=True, list=True, create=True, write=True,
                                                  delete=True)}[access]
        sas = sdk.generate_share_sas(self.config["account_name"], self.config["share"], account_key=key,
                                     permission=perms, expiry=sas_expiry(expiry_seconds),
                                     start=sas_start())
        return {"sas_token": sas}

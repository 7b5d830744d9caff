"""Datastores: where jobs read inputs and write outputs (docs/datastores.md).

Kinds are registered by module path and imported on first use, so a missing Azure SDK only
matters to someone who uses an Azure kind, and then says how to install it.
"""
from __future__ import annotations

from typing import Any

from ..errors import DatastoreError, SpecError
from ..plugins import DATASTORE_GROUP, load_registered, with_entry_points
from ..records import DatastoreRow
from .base import Datastore, clean_path
from .progress import Callback, TqdmCallback
from .reference import DataReference, check_job_data, output_destination

KINDS: dict[str, tuple[str, str, str | None]] = {
    "local": ("batchai_jupyter.datastores.local", "LocalDatastore", None),
    "azure_blob": ("batchai_jupyter.datastores.azure_blob", "AzureBlobDatastore", "azure"),
    "azure_file": ("batchai_jupyter.datastores.azure_file", "AzureFileDatastore", "azure"),
}
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")

__all__ = [
    "KINDS",
    "Callback",
    "DataReference",
    "Datastore",
    "TqdmCallback",
    "check_job_data",
    "clean_path",
    "datastore_class",
    "datastore_from_record",
    "datastore_kinds",
    "output_destination",
    "output_reference",
    "register_datastore",
]


def datastore_kinds() -> list[str]:
    """Every kind a datastore can be registered as: the built-in ones and installed plugins'."""
    return sorted(with_entry_points(KINDS, DATASTORE_GROUP))


def datastore_class(kind: str) -> type[Datastore]:
    registry = KINDS if kind in KINDS else with_entry_points(KINDS, DATASTORE_GROUP)
    if kind not in registry:
        raise SpecError("kind", f"unknown datastore kind {kind!r}", sorted(registry))
    cls: type[Datastore] = load_registered(registry, kind, "datastore kind", DatastoreError)
    return cls


def datastore_from_record(ws: Any, row: DatastoreRow) -> Datastore:
    """A Datastore object from its history.db row plus its credential from the secrets file."""
    cls = datastore_class(row["kind"])
    credential = ws.secrets.get("datastores", row["name"]) if ws is not None else {}
    ds = cls(row["name"], row["config"], credential)
    ds.workspace = ws  # type: ignore[attr-defined]
    ds.is_default = bool(row.get("is_default"))  # type: ignore[attr-defined]
    return ds


def register_datastore(ws: Any, name: str, kind: str, **options: Any) -> Datastore:
    """Validate, store the credential in secrets.json only, the rest in history.db."""
    if not isinstance(name, str) or not name or not set(name) <= _NAME_CHARS or len(name) > 64:
        raise SpecError("name", f"{name!r} is not a valid datastore name",
                        "1-64 letters, digits, '_' and '-'")
    cls = datastore_class(kind)
    create = bool(options.pop("create_if_not_exists", False))
    config, credential = cls.validate_options(name, options)
    ds = cls(name, config, credential)
    if create:
        creator = getattr(ds, "create_root", None)
        if creator is None:
            raise SpecError("create_if_not_exists", f"is not an option of kind={kind!r}")
        creator()
    if credential:
        ws.secrets.put("datastores", name, credential)
    else:
        ws.secrets.delete("datastores", name)
    ws.history.put_datastore(name, kind, config)
    return datastore_from_record(ws, DatastoreRow(name=name, kind=kind, config=config, is_default=False))


def output_reference(run: Any, output_id: str) -> DataReference:
    """Where output `output_id` of a finished run was uploaded, as a DataReference."""
    row = run.workspace.history.run_row(run.id)
    outputs = (row or {}).get("spec", {}).get("outputs") or {}
    if output_id not in outputs:
        raise SpecError("output_id", f"run {run.id} has no output {output_id!r}", sorted(outputs))
    ref = outputs[output_id]
    return run.workspace.datastore(ref["datastore"]).path(output_destination(ref, run.id))

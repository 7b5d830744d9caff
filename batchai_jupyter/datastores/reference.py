"""DataReference (a path on a datastore and how a job uses it) and the submit-time checks.

A job names data in three places: inputs (AZ_BATCHAI_INPUT_<ID>, downloaded or mounted),
outputs (AZ_BATCHAI_OUTPUT_<ID>, uploaded when the job ends) and mounts (folders under
$AZ_BATCHAI_JOB_MOUNT_ROOT). Each becomes a small JSON dict in the stored spec; no secret.

Outputs follow the Batch AI outputDirectories layout: <path>/<run id>[/<path_suffix>], so two
runs writing the same output never collide.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import DatastoreError, SpecError
from .paths import clean_path, join

if TYPE_CHECKING:
    from .base import Datastore

MODES = {"inputs": ("download", "mount"), "outputs": ("upload",), "mounts": ("mount",)}
DEFAULT_MODE = {"inputs": "download", "outputs": "upload", "mounts": "mount"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MOUNT_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class DataReference:
    """A path on a datastore; as_mount/as_download/as_upload say how a job gets it."""

    datastore: Datastore
    path: str = ""
    mode: str | None = None          # None: the default of where it is used
    path_on_compute: str | None = None
    path_suffix: str = ""

    def as_mount(self) -> DataReference:
        return replace(self, mode="mount")

    def as_download(self, path_on_compute: str | None = None) -> DataReference:
        return replace(self, mode="download",
                       path_on_compute=clean_path(path_on_compute, "path_on_compute") or None)

    def as_upload(self, path_on_compute: str | None = None, path_suffix: str = "") -> DataReference:
        return replace(self, mode="upload",
                       path_on_compute=clean_path(path_on_compute, "path_on_compute") or None,
                       path_suffix=clean_path(path_suffix, "path_suffix"))

    @property
    def datastore_name(self) -> str:
        return self.datastore.name

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"datastore": self.datastore.name, "path": self.path, "mode": self.mode}
        if self.path_on_compute:
            d["path_on_compute"] = self.path_on_compute
        if self.path_suffix:
            d["path_suffix"] = self.path_suffix
        return d

    def __repr__(self) -> str:
        return (f"DataReference(datastore={self.datastore.name!r}, path={self.path!r}, "
                f"mode={self.mode!r})")


def output_destination(ref: Mapping[str, Any], run_id: str) -> str:
    """Where an output of a run lands on its datastore: <path>/<run id>[/<path_suffix>]."""
    return join(ref.get("path", ""), run_id, ref.get("path_suffix", ""))


def _as_dict(value: Any, field: str, key: str) -> dict[str, Any]:
    """DataReference | Datastore | dict | 'DATASTORE:PATH[:mode]' -> a reference dict."""
    if isinstance(value, DataReference):
        return value.to_dict()
    if hasattr(value, "as_mount") and hasattr(value, "kind") and hasattr(value, "name"):
        return {"datastore": value.name, "path": "", "mode": None}
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"datastore", "path", "mode", "path_on_compute", "path_suffix"})
        if unknown:
            raise SpecError(f"{field}.{key}.{unknown[0]}", "is not a data reference field",
                            ["datastore", "path", "mode", "path_on_compute", "path_suffix"])
        return dict(value)
    if isinstance(value, str):
        name, sep, rest = value.partition(":")
        path, _, mode = rest.partition(":")
        if not sep or not name:
            raise SpecError(f"{field}.{key}", f"{value!r} is not a data reference",
                            "ds.path('p').as_download() or 'DATASTORE:PATH[:mount|download]'")
        return {"datastore": name, "path": path, "mode": mode or None}
    raise SpecError(f"{field}.{key}", f"a {type(value).__name__} is not a data reference",
                    "a DataReference from ds.path(...), a Datastore, or 'DATASTORE:PATH'")


def check_job_data(ws: Any, spec: Any) -> dict[str, dict[str, Any]]:
    """Validate every data reference of a spec before anything is uploaded or started."""
    known = {r["name"]: r for r in ws.history.datastore_rows()}
    result: dict[str, dict[str, Any]] = {}
    for field, modes in MODES.items():
        mapping = getattr(spec, field) or {}
        if not isinstance(mapping, Mapping):
            raise SpecError(field, f"must be a dict of {'name' if field == 'mounts' else 'ID'} -> "
                            "data reference")
        resolved: dict[str, Any] = {}
        for key, value in mapping.items():
            key = str(key)
            if field == "mounts":
                if not _MOUNT_NAME.match(key) or key in (".", ".."):
                    raise SpecError("mounts", f"mount name {key!r} is not a plain folder name",
                                    "letters, digits, '.', '_' and '-'")
            elif not _IDENT.match(key):
                raise SpecError(field, f"id {key!r} is not an identifier",
                                "letters, digits and _, not starting with a digit")
            ref = _as_dict(value, field, key)
            name = ref.get("datastore")
            if name not in known:
                raise DatastoreError(f"{field}.{key}: datastore {name!r} not found "
                                     f"(known datastores: {', '.join(known) or 'none'})")
            mode = ref.get("mode") or DEFAULT_MODE[field]
            if mode not in modes:
                hint = {"download": "as_download()", "mount": "as_mount()", "upload": "as_upload()"}
                raise SpecError(f"{field}.{key}.mode", f"{mode!r} cannot be used in {field}",
                                [hint[m] for m in modes])
            out: dict[str, Any] = {"datastore": name,
                                   "path": clean_path(ref.get("path"), f"{field}.{key}.path"),
                                   "mode": mode}
            for extra in ("path_on_compute", "path_suffix"):
                if ref.get(extra):
                    out[extra] = clean_path(ref[extra], f"{field}.{key}.{extra}")
            resolved[key] = out
        result[field] = resolved
    return result

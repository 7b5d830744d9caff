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


def checked_reference(field: str, key: str, value: Any) -> dict[str, Any]:
    """One inputs/outputs/mounts entry as a reference dict with its paths checked (a SpecError
    names e.g. 'inputs.D.path'); needs no workspace, so JobSpec.validate() runs it too."""
    ref = _as_dict(value, field, key)
    for name in ("path", "path_on_compute", "path_suffix"):
        if ref.get(name) is not None:
            ref[name] = clean_path(ref[name], f"{field}.{key}.{name}")
    return ref


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
            ref = checked_reference(field, key, value)
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


# -- what a submit adds: cluster volumes, the stdouterr copy, how Azure volumes reach the nodes --
_VOLUME_FIELDS = ("mounts", "cluster_mounts")


def resolve_job_data(ws: Any, spec: Any, cluster: Any = None) -> dict[str, Any] | None:
    """check_job_data plus the cluster's mount volumes, the stdOutErrPathPrefix target and the
    mount mode (fuse | staged) of every Azure volume; None when the run uses no datastore.

    `cluster` is the run's ClusterConfig (or None). A "properties" key carries what the run's
    properties say about it (mount_mode, mount_mode_reason, job_output_directory_path_segment).
    """
    import os
    import sys

    from .mount_mode import MOUNT_MODES, choose_mode
    refs: dict[str, Any] = check_job_data(ws, spec) if spec.has_data else {}
    options = getattr(cluster, "options", None) or {}
    volumes = options.get("mount_volumes") or []
    known = {r["name"]: r for r in ws.history.datastore_rows()}
    if volumes:
        refs["cluster_mounts"] = {}
        for v in volumes:
            if v["datastore"] not in known:
                raise DatastoreError(f"cluster {cluster.name!r}: mount volume {v['path']!r} names datastore "
                                     f"{v['datastore']!r}, which no longer exists")
            refs["cluster_mounts"][v["path"]] = {"datastore": v["datastore"], "path": v.get("sub", ""),
                                                 "mode": "mount"}
    properties: dict[str, Any] = {}
    prefix = getattr(spec, "std_out_err_path_prefix", None)
    if prefix:
        segment = stdouterr_segment(ws)
        refs["stdouterr"] = _stdouterr_ref(prefix, known, segment)
        properties["job_output_directory_path_segment"] = segment
    if not refs:
        return None
    azure = [ref for f in _VOLUME_FIELDS for ref in (refs.get(f) or {}).values()] + \
        [ref for ref in (refs.get("inputs") or {}).values() if ref.get("mode") == "mount"]
    azure = [ref for ref in azure if known.get(ref["datastore"], {}).get("kind") in ("azure_blob", "azure_file")]
    if azure:
        requested = os.environ.get("BATCHAI_MOUNT_MODE") or options.get("mount_mode") or "auto"
        if requested not in MOUNT_MODES:
            raise SpecError("mount_mode", f"unknown value {requested!r}", MOUNT_MODES)
        # nodes put their interpreter's folder first on PATH, where pip installed rclone
        mode, why = choose_mode(requested, os.pathsep.join([os.path.dirname(sys.executable),
                                                            os.environ.get("PATH", "")]))
        for ref in azure:
            ref["mount_via"] = mode
        properties.update(mount_mode=mode, mount_mode_reason=why)
    if properties:
        refs["properties"] = properties
    return refs


def stdouterr_segment(ws: Any) -> str:
    """Batch AI's jobOutputDirectoryPathSegment, with {experiment} and {run_id} still to fill in
    (run_properties and the node's data config do): there is no subscription or resource group
    here, so "local/batchai" stands for them; the workspace is named by its folder's parent."""
    name = ws.path.resolve().parent.name or "workspace"
    return join("local", "batchai", "workspaces", name, "experiments", "{experiment}", "jobs", "{run_id}")


def fill_segment(segment: str, run_id: str, experiment: str) -> str:
    return segment.replace("{experiment}", experiment).replace("{run_id}", run_id)


def run_properties(refs: Mapping[str, Any] | None, run_id: str, experiment: str) -> dict[str, Any]:
    """What a submit records in the run's properties about its data (see resolve_job_data)."""
    props = dict((refs or {}).get("properties") or {})
    if "job_output_directory_path_segment" in props:
        props["job_output_directory_path_segment"] = fill_segment(
            props["job_output_directory_path_segment"], run_id, experiment)
    return props


def _stdouterr_ref(prefix: Any, known: Mapping[str, Any], segment: str) -> dict[str, Any]:
    if isinstance(prefix, str):
        if ":" in prefix and not prefix.startswith(("/", "$", "~")):
            value: Any = prefix
        else:
            return {"local_path": prefix, "segment": segment}
    else:
        value = prefix
    ref = _as_dict(value, "std_out_err_path_prefix", "datastore")
    if ref.get("datastore") not in known:
        raise DatastoreError(f"std_out_err_path_prefix: datastore {ref.get('datastore')!r} not found "
                             f"(known datastores: {', '.join(known) or 'none'})")
    return {"datastore": ref["datastore"], "path": clean_path(ref.get("path"), "std_out_err_path_prefix"),
            "mode": "upload", "segment": segment}

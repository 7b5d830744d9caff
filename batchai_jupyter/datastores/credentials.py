"""The data section of a node's run manifest: each reference with the narrowest credential.

The engine calls node_data_config when it launches a run. An input gets a read+list SAS, an
output a create+write SAS, both for its own container/share only and expiring after the run's
max_wall_clock_seconds plus a margin for staging. The account key never reaches a node; a
datastore registered with a SAS only passes that SAS on (it cannot be narrowed without the key).
Folders (local/NFS) need no credential.
"""
from __future__ import annotations

from typing import Any

from ..errors import DatastoreError
from ..records import RunRow
from .base import Datastore
from .reference import output_destination

STAGING_MARGIN_SECONDS = 3600  # queueing on the node, downloads before and uploads after the job
ACCESS = {"inputs": "read", "outputs": "write", "mounts": "mount", "cluster_mounts": "mount"}


def node_data_config(workspace: Any, run: RunRow) -> dict[str, Any]:
    from . import datastore_from_record
    spec = run["spec"]
    lifetime = float(spec.get("max_wall_clock_seconds") or 7 * 86400) + STAGING_MARGIN_SECONDS
    rows = {r["name"]: r for r in workspace.history.datastore_rows()}
    cache: dict[str, Datastore] = {}
    data: dict[str, Any] = {"run_id": run["id"]}
    for field, access in ACCESS.items():
        entries: dict[str, Any] = {}
        for key, ref in (spec.get(field) or {}).items():
            name = ref["datastore"]
            if name not in rows:
                raise DatastoreError(f"{field}.{key}: datastore {name!r} no longer exists "
                                     f"(known datastores: {', '.join(rows) or 'none'})")
            ds = cache.setdefault(name, datastore_from_record(workspace, rows[name]))
            entry = dict(ref, name=name, kind=ds.kind, config=ds.node_config(),
                         credential=ds.node_credential(access, lifetime))
            if field == "outputs":
                entry["destination"] = output_destination(ref, run["id"])
            entries[key] = entry
        data[field] = entries
    std = spec.get("stdouterr")
    if std:  # stdOutErrPathPrefix: where the node copies its stdouterr/ when the run ends
        from .paths import join
        from .reference import fill_segment
        segment = fill_segment(std["segment"], run["id"], run["experiment"])
        if std.get("local_path"):
            data["stdouterr"] = {"local_path": std["local_path"], "destination": join(segment, "stdouterr")}
        else:
            name = std["datastore"]
            if name not in rows:
                raise DatastoreError(f"std_out_err_path_prefix: datastore {name!r} no longer exists")
            ds = cache.setdefault(name, datastore_from_record(workspace, rows[name]))
            data["stdouterr"] = dict(std, name=name, kind=ds.kind, config=ds.node_config(),
                                     credential=ds.node_credential("write", lifetime),
                                     destination=join(std.get("path", ""), segment, "stdouterr"))
    return data


def datastore_for_node(entry: dict[str, Any]) -> Datastore:
    """The Datastore a node builds from one manifest entry (its narrowed credential only)."""
    from . import datastore_class
    return datastore_class(entry["kind"])(entry["name"], entry["config"], entry.get("credential"))

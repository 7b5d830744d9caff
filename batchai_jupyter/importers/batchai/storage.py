"""Batch AI (2018-05-01) job.json data fields -> JobSpec inputs, outputs and mounts.

    mountVolumes.azureFileShares / azureBlobFileSystems -> a datastore (an existing one with the
        same account and share/container, else one registered from the job's credentials)
    mountVolumes.unmanagedFileSystems -> `<mountCommand> $AZ_BATCHAI_JOB_MOUNT_ROOT/<path>` run
        first in job_preparation, as Batch AI did
    inputDirectories {id, path}  -> inputs[id]; a path inside an Azure volume is downloaded,
        a path inside a local/NFS datastore is used in place
    outputDirectories {id, pathPrefix, pathSuffix} -> outputs[id], uploaded to
        <prefix>/<run id>/<suffix> on the volume's datastore

    stdOutErrPathPrefix in a job volume -> std_out_err_path_prefix {datastore, path}: std out/err
        are copied there when the run ends; below $AZ_BATCHAI_MOUNT_ROOT it stays a node path
        (a cluster volume, mounted on every node)

An Azure volume that inputs, outputs or stdOutErrPathPrefix point into travels through them
(download/upload) and is not also mounted; other Azure volumes become mounts (node/mounts.py:
rclone FUSE, or staged). Volumes without credentials take the storage account's key or SAS given
at import (storage_key= / --storage-account-key).
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from ...errors import SpecError

_ROOTS = ("$AZ_BATCHAI_JOB_MOUNT_ROOT", "${AZ_BATCHAI_JOB_MOUNT_ROOT}",
          "$AZ_BATCHAI_MOUNT_ROOT", "${AZ_BATCHAI_MOUNT_ROOT}")


def _list(props: Mapping[str, Any], key: str) -> list[Any]:
    value = props.get(key) or []
    if not isinstance(value, list):
        raise SpecError(key, "must be a list")
    return value


def _credential(credentials: Any, field: str, storage: Any, account: str) -> dict[str, str]:
    """The volume's own accountKey/sasKey, else the storage account's key or SAS given at import."""
    if credentials is not None:
        if not isinstance(credentials, Mapping):
            raise SpecError(field, "must be an object with accountKey")
        if "accountKeySecretReference" in credentials:
            raise SpecError(f"{field}.accountKeySecretReference", "Key Vault references are not "
                            "supported; register the datastore first (ws.register_datastore) or give "
                            "accountKey", ["accountKey"])
        if credentials.get("accountKey"):
            return {"account_key": str(credentials["accountKey"])}
        if credentials.get("sasKey"):
            return {"sas_token": str(credentials["sasKey"]).lstrip("?")}
    if storage is not None and (storage.name in (None, account)):
        if storage.key:
            return {"account_key": storage.key}
        if storage.sas:
            return {"sas_token": storage.sas.lstrip("?")}
    return {}


def _standard_endpoint(endpoint: str | None, account: str, service: str) -> bool:
    return endpoint is None or endpoint.rstrip("/") == f"https://{account}.{service}.core.windows.net"


def _find_or_register(workspace: Any, kind: str, account: str, root_field: str, root: str,
                      endpoint: str | None, credential: dict[str, str], field: str,
                      storage: Any = None) -> str:
    """Name of a datastore for (kind, account, container/share): existing, else registered.

    A new one takes the endpoint of a datastore already registered for the same account and kind
    when the job names the account's standard endpoint (an emulator or a sovereign cloud is set up
    once, by registering one datastore of the account)."""
    rows = workspace.history.datastore_rows()
    for row in rows:
        cfg = row["config"]
        if row["kind"] == kind and cfg.get("account_name") == account and cfg.get(root_field) == root:
            return str(row["name"])
    if not credential:
        hint = [f"{storage.hint('key')} <key>", f"{storage.hint('sas')} <sas>"] if storage is not None else []
        raise SpecError(f"{field}.credentials", f"no datastore is registered for {account}/{root} and "
                        "the job gives no account key or SAS",
                        [*hint, "credentials.accountKey", "ws.register_datastore(...) first"])
    service = "blob" if kind == "azure_blob" else "file"
    if _standard_endpoint(endpoint, account, service):
        known = next((r["config"].get("endpoint") for r in rows if r["kind"] == kind
                      and r["config"].get("account_name") == account and r["config"].get("endpoint")), None)
        endpoint = known or endpoint
    name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{account}_{root}")[:64]
    options: dict[str, Any] = {"account_name": account, root_field: root, **credential}
    if endpoint:
        options["endpoint"] = endpoint
    workspace.register_datastore(name, kind=kind, **options)
    return name


def _volumes(props: Mapping[str, Any], workspace: Any, storage: Any = None) -> tuple[dict[str, str], list[str]]:
    """relativeMountPath -> datastore name for Azure volumes; mount commands for the others."""
    mv = props.get("mountVolumes") or {}
    if not isinstance(mv, Mapping):
        raise SpecError("mountVolumes", "must be an object")
    known = ("azureFileShares", "azureBlobFileSystems", "unmanagedFileSystems", "fileServers")
    for k in mv:
        if k not in known:
            raise SpecError(f"mountVolumes.{k}", "is not a Batch AI mount volume type", known)
    if mv.get("fileServers"):
        raise SpecError("mountVolumes.fileServers", "Batch AI file servers do not exist here; register "
                        "the NFS export mounted on the nodes as a datastore of kind='local'",
                        ["unmanagedFileSystems", "a local datastore"])
    volumes: dict[str, str] = {}
    commands: list[str] = []
    for i, v in enumerate(_list(mv, "azureFileShares")):
        field = f"mountVolumes.azureFileShares[{i}]"
        url = str(v.get("azureFileUrl") or "")
        m = re.match(r"^(https?://[^/]+(?:/.*)?)/([^/]+)/?$", url)
        if not m or not v.get("relativeMountPath"):
            raise SpecError(f"{field}.azureFileUrl", f"{url!r} is not a file share URL",
                            "https://<account>.file.core.windows.net/<share>")
        endpoint, share = m.group(1), m.group(2)
        account = v.get("accountName") or endpoint.split("//", 1)[1].split(".", 1)[0]
        volumes[v["relativeMountPath"]] = _find_or_register(
            workspace, "azure_file", account, "share", share, endpoint,
            _credential(v.get("credentials"), f"{field}.credentials", storage, account), field, storage)
    for i, v in enumerate(_list(mv, "azureBlobFileSystems")):
        field = f"mountVolumes.azureBlobFileSystems[{i}]"
        for req in ("accountName", "containerName", "relativeMountPath"):
            if not v.get(req):
                raise SpecError(f"{field}.{req}", "is missing")
        volumes[v["relativeMountPath"]] = _find_or_register(
            workspace, "azure_blob", v["accountName"], "container", v["containerName"], None,
            _credential(v.get("credentials"), f"{field}.credentials", storage, v["accountName"]), field,
            storage)
    for i, v in enumerate(_list(mv, "unmanagedFileSystems")):
        field = f"mountVolumes.unmanagedFileSystems[{i}]"
        if not v.get("mountCommand") or not v.get("relativeMountPath"):
            raise SpecError(field, "needs mountCommand and relativeMountPath")
        target = f"$AZ_BATCHAI_JOB_MOUNT_ROOT/{shlex.quote(str(v['relativeMountPath']))}"
        commands.append(f"mkdir -p {target} && {v['mountCommand']} {target}")
    return volumes, commands


def cluster_volumes(workspace: Any) -> dict[str, str]:
    """path below AZ_BATCHAI_MOUNT_ROOT -> datastore, over the workspace's clusters' mount volumes."""
    out: dict[str, str] = {}
    for config in workspace.history.cluster_configs():
        for v in config.options.get("mount_volumes") or []:
            out.setdefault(str(v["path"]), str(v["datastore"]))
    return out


def _locate(path: str, volumes: dict[str, str], workspace: Any, field: str) -> tuple[str, str]:
    """A job.json path -> (datastore name, path on it)."""
    for root in _ROOTS:
        if path == root or path.startswith(root + "/"):
            rest = path[len(root):].strip("/")
            # job volumes first; below AZ_BATCHAI_MOUNT_ROOT also the clusters' mount volumes
            candidates = dict(volumes)
            if "JOB_MOUNT" not in root and workspace is not None:
                candidates = {**cluster_volumes(workspace), **volumes}
            for rel in sorted(candidates, key=len, reverse=True):
                if rest == rel or rest.startswith(rel + "/"):
                    return candidates[rel], rest[len(rel):].strip("/")
            break
    if workspace is not None:
        for row in workspace.history.datastore_rows():
            folder = row["config"].get("path") if row["kind"] == "local" else None
            if folder and (path == folder or path.startswith(folder.rstrip("/") + "/")):
                return row["name"], path[len(folder):].strip("/")
    raise SpecError(field, f"{path!r} is not inside an Azure mount volume of this job or a "
                    "registered local datastore", "$AZ_BATCHAI_JOB_MOUNT_ROOT/<relativeMountPath>/...")


def import_data_fields(props: Mapping[str, Any], workspace: Any, storage: Any = None) -> dict[str, Any]:
    volumes, commands = _volumes(props, workspace, storage)
    used: set[str] = set()
    result: dict[str, Any] = {}
    prefix = props.get("stdOutErrPathPrefix")
    if isinstance(prefix, str) and any(prefix == r or prefix.startswith(r + "/") for r in _ROOTS[:2]):
        # a job volume named by stdOutErrPathPrefix: the node copies std out/err to its datastore
        name, sub = _locate(prefix, volumes, workspace, "stdOutErrPathPrefix")
        used.add(name)
        result["std_out_err_path_prefix"] = {"datastore": name, "path": sub}
    inputs: dict[str, Any] = {}
    for i, d in enumerate(_list(props, "inputDirectories")):
        field = f"inputDirectories[{i}]"
        if not isinstance(d, Mapping) or not d.get("id") or not d.get("path"):
            raise SpecError(field, "needs id and path")
        name, sub = _locate(str(d["path"]), volumes, workspace, f"{field}.path")
        used.add(name)
        kind = next((r["kind"] for r in workspace.history.datastore_rows() if r["name"] == name), "")
        inputs[str(d["id"])] = {"datastore": name, "path": sub,
                                "mode": "mount" if kind == "local" else "download"}
    outputs: dict[str, Any] = {}
    for i, d in enumerate(_list(props, "outputDirectories")):
        field = f"outputDirectories[{i}]"
        if not isinstance(d, Mapping) or not d.get("id") or not d.get("pathPrefix"):
            raise SpecError(field, "needs id and pathPrefix")
        name, sub = _locate(str(d["pathPrefix"]), volumes, workspace, f"{field}.pathPrefix")
        used.add(name)
        ref = {"datastore": name, "path": sub, "mode": "upload"}
        if d.get("pathSuffix"):
            ref["path_suffix"] = str(d["pathSuffix"]).strip("/")
        outputs[str(d["id"])] = ref
    mounts = {rel.strip("/").replace("/", "_"): {"datastore": name, "path": "", "mode": "mount"}
              for rel, name in volumes.items() if name not in used}
    result.update(inputs=inputs, outputs=outputs, mounts=mounts)
    if commands:
        prep = props.get("jobPreparation") or {}
        original = prep.get("commandLine") if isinstance(prep, Mapping) else None
        result["job_preparation"] = " && ".join(commands + ([original] if original else []))
    return result

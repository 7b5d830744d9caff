"""Import of Batch AI cluster.json files (2018-05-01 and 2018-03-01) into a ClusterSpec.

    scaleSettings.manual {targetNodeCount, nodeDeallocationOption} -> min = max = target
    scaleSettings.autoScale {minimumNodeCount, maximumNodeCount}   -> min_nodes, max_nodes
    nodeSetup.mountVolumes (or mountVolumes)  -> datastores + mount_volumes (AZ_BATCHAI_MOUNT_ROOT/<path>);
        unmanagedFileSystems become mount commands at the start of the setup task
    nodeSetup.setupTask {commandLine, environmentVariables} -> setup_task (once per node)
    vmSize, vmPriority, virtualMachineConfiguration, userAccountSettings, subnet -> ignored, named
        in the cluster's properties (they choose Azure VMs, which do not exist here)
"""
from __future__ import annotations

import importlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import SpecError
from .job import StorageAccount, _load, _pairs, fill_placeholders

_IGNORED = ("vmSize", "vmPriority", "virtualMachineConfiguration", "userAccountSettings", "subnet",
            "location", "tags")
_KNOWN = ("scaleSettings", "nodeSetup", "mountVolumes", *_IGNORED)


@dataclass
class ClusterSpec:
    """A cluster's settings as a Batch AI cluster.json gave them; `create` makes the cluster."""

    min_nodes: int = 0
    max_nodes: int = 1
    node_deallocation_option: str = "requeue"
    mount_volumes: list[dict[str, str]] = field(default_factory=list)
    setup_task: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_batchai_json(cls, cluster_json: Any, workspace: Any = None, storage_account: str | None = None,
                          storage_key: str | None = None, storage_sas: str | None = None) -> ClusterSpec:
        """Read a cluster.json (a path or its dict); its shares and containers become datastores.

        Parameters
        ----------
        cluster_json: the file, or its content as a dict ({"properties": ...} or the properties).
        workspace: where the mount volumes' datastores are registered (None: Workspace.from_config()).
        storage_account, storage_key, storage_sas: fill <AZURE_BATCHAI_STORAGE_ACCOUNT> /
            <AZURE_BATCHAI_STORAGE_KEY> and give volumes without credentials their key or SAS.
        """
        return cluster_from_batchai_json(cls, cluster_json, workspace,
                                         StorageAccount(storage_account, storage_key, storage_sas))

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ws.create_cluster() this spec stands for."""
        out: dict[str, Any] = {"min_nodes": self.min_nodes, "max_nodes": self.max_nodes,
                               "node_deallocation_option": self.node_deallocation_option}
        if self.mount_volumes:
            out["mount_volumes"] = [dict(v) for v in self.mount_volumes]
        if self.setup_task:
            out["setup_task"] = self.setup_task
        if self.properties:
            out["properties"] = dict(self.properties)
        return out

    def create(self, workspace: Any, name: str, backend: str = "local", **options: Any) -> Any:
        """ws.create_cluster(name, backend, **this spec, **options); options win."""
        return workspace.create_cluster(name, backend=backend, **{**self.kwargs(), **options})


def _count(value: Any, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SpecError(field_name, f"must be an integer >= 0, got {value!r}", "0 or more")
    return value


def _scale(settings: Any, spec: ClusterSpec) -> None:
    if settings is None:
        return
    if not isinstance(settings, Mapping) or not (set(settings) <= {"manual", "autoScale"}):
        raise SpecError("scaleSettings", "must be an object with manual or autoScale", ["manual", "autoScale"])
    manual, auto = settings.get("manual"), settings.get("autoScale")
    if bool(manual) == bool(auto):
        raise SpecError("scaleSettings", "give exactly one of manual and autoScale", ["manual", "autoScale"])
    if manual:
        if not isinstance(manual, Mapping):
            raise SpecError("scaleSettings.manual", "must be an object with targetNodeCount")
        target = _count(manual.get("targetNodeCount", 1), "scaleSettings.manual.targetNodeCount")
        spec.min_nodes = spec.max_nodes = target
        option = str(manual.get("nodeDeallocationOption") or "requeue").lower()
        spec.node_deallocation_option = option
    else:
        if not isinstance(auto, Mapping):
            raise SpecError("scaleSettings.autoScale", "must be an object with minimumNodeCount, maximumNodeCount")
        spec.min_nodes = _count(auto.get("minimumNodeCount", 0), "scaleSettings.autoScale.minimumNodeCount")
        spec.max_nodes = _count(auto.get("maximumNodeCount", max(1, spec.min_nodes)),
                                "scaleSettings.autoScale.maximumNodeCount")
        if "initialNodeCount" in auto:
            spec.properties["initialNodeCount"] = auto["initialNodeCount"]


def _setup(task: Any, spec: ClusterSpec, commands: list[str]) -> None:
    if task is None and not commands:
        return
    parts = list(commands)
    if task is not None:
        if not isinstance(task, Mapping) or not task.get("commandLine"):
            raise SpecError("nodeSetup.setupTask.commandLine", "is missing")
        if task.get("secrets"):
            raise SpecError("nodeSetup.setupTask.secrets", "secrets of a setup task are not kept here; "
                            "give them to the jobs (job.json secrets) or install them on the nodes",
                            ["environmentVariables"])
        env = _pairs(task, "environmentVariables")
        parts += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
        parts.append(str(task["commandLine"]))
        if task.get("stdOutErrPathPrefix"):
            spec.properties["setupTask.stdOutErrPathPrefix"] = (
                "ignored: the setup task's output is in the files of the run it ran before "
                "(stdout-setup_task.txt)")
    spec.setup_task = " && ".join(parts)


def cluster_from_batchai_json(cls: type[ClusterSpec], cluster_json: Any, workspace: Any,
                              storage: StorageAccount) -> ClusterSpec:
    data, _folder = _load(cluster_json)
    data = fill_placeholders(data, storage, "cluster.json")
    props = data.get("properties", data)
    if not isinstance(props, Mapping):
        raise SpecError("properties", "must be an object")
    unknown = sorted(k for k in props if k not in _KNOWN and not k.startswith("$"))
    if unknown:
        raise SpecError(unknown[0], "is not a Batch AI cluster.json property", sorted(_KNOWN))
    spec = cls()
    _scale(props.get("scaleSettings"), spec)
    node_setup = props.get("nodeSetup") or {}
    if not isinstance(node_setup, Mapping):
        raise SpecError("nodeSetup", "must be an object")
    bad = sorted(set(node_setup) - {"setupTask", "mountVolumes", "performanceCountersSettings"})
    if bad:
        raise SpecError(f"nodeSetup.{bad[0]}", "is not a nodeSetup property", ["setupTask", "mountVolumes"])
    volumes = node_setup.get("mountVolumes") or props.get("mountVolumes")
    commands: list[str] = []
    if volumes:
        from .storage import _volumes
        if workspace is None:
            workspace = importlib.import_module("batchai_jupyter.workspace").Workspace.from_config()
        found, mount_commands = _volumes({"mountVolumes": volumes}, workspace, storage)
        spec.mount_volumes = [{"datastore": name, "path": rel.strip("/")} for rel, name in found.items()]
        commands = [c.replace("$AZ_BATCHAI_JOB_MOUNT_ROOT", "$AZ_BATCHAI_MOUNT_ROOT") for c in mount_commands]
    _setup(node_setup.get("setupTask"), spec, commands)
    ignored = sorted(k for k in props if k in _IGNORED)
    if ignored:
        spec.properties["ignored"] = {k: props[k] for k in ignored if k in ("vmSize", "vmPriority")}
        spec.properties["note"] = (f"{', '.join(ignored)} choose Azure VMs and have no meaning here: "
                                   "ignored (the backend's nodes are used as they are)")
    return spec


def cli_cluster_options(workspace: Any, args: Any) -> dict[str, Any]:
    """`batchai cluster create -f cluster.json --afs-name ... --nfs ...` -> create_cluster options."""
    storage = StorageAccount(args.storage_account_name, args.storage_account_key, args.storage_account_sas,
                             names={"account": "--storage-account-name", "key": "--storage-account-key",
                                    "sas": "--storage-account-sas"})
    options: dict[str, Any] = {}
    if args.file:
        options.update(cluster_from_batchai_json(ClusterSpec, args.file, workspace, storage).kwargs())
    volumes = list(options.pop("mount_volumes", []))
    shares = ((args.afs_name, args.afs_mount_path, "azureFileShares"),
              (args.container_name, args.container_mount_path, "azureBlobFileSystems"))
    for name, path, key in shares:
        if not name:
            continue
        if not storage.name:
            raise SpecError("--storage-account-name", f"--{'afs' if 'File' in key else 'container'}-name "
                            "needs the storage account", ["--storage-account-name NAME"])
        volume = ({"azureFileUrl": f"https://{storage.name}.file.core.windows.net/{name}"} if "File" in key
                  else {"accountName": storage.name, "containerName": name})
        from .storage import _volumes
        found, _ = _volumes({"mountVolumes": {key: [{**volume, "relativeMountPath": path}]}}, workspace, storage)
        volumes += [{"datastore": ds, "path": rel} for rel, ds in found.items()]
    if args.nfs:
        volumes.append({"datastore": _nfs_datastore(workspace, args.nfs), "path": args.nfs_mount_path})
    if volumes:
        options["mount_volumes"] = volumes
    if args.setup_task:
        previous = options.get("setup_task")
        options["setup_task"] = f"{previous} && {args.setup_task}" if previous else args.setup_task
    return options


def _nfs_datastore(workspace: Any, value: str) -> str:
    """--nfs NAME (a registered datastore) or --nfs /path (registered as a local datastore)."""
    names = [r["name"] for r in workspace.history.datastore_rows()]
    if value in names:
        return value
    if not value.startswith("/"):
        raise SpecError("--nfs", f"{value!r} is neither a datastore of this workspace nor an absolute path",
                        names + ["/path/of/the/nfs/mount"])
    name = "nfs_" + "".join(c if c.isalnum() else "_" for c in value.strip("/"))[:60]
    if name not in names:
        workspace.register_datastore(name, kind="local", path=value)
    return name

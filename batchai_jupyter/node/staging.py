"""Data staging on a node: inputs and mounts before the job, outputs after it (also on failure).

The node talks to storage itself with the narrowed credential from its run manifest; data never
passes through the client or the engine.

    inputs   download -> <run>/inputs/<ID> (or <wd>/<path_on_compute>), AZ_BATCHAI_INPUT_<ID>
             mount    -> the folder itself (local/NFS) or a read-only Azure volume, AZ_BATCHAI_INPUT_<ID>
    outputs  AZ_BATCHAI_OUTPUT_<ID> = <run>/output-dirs/<ID>; uploaded to <path>/<run id>/<suffix>
    mounts   $AZ_BATCHAI_JOB_MOUNT_ROOT/<name>: a link to the folder, or an Azure volume
    cluster volumes  $AZ_BATCHAI_MOUNT_ROOT/<path>: the same, for the cluster's mount_volumes
    stdouterr        stdOutErrPathPrefix: std out/err copied there when the job ended
Azure volumes are FUSE mounts through rclone or staged copies (node/mounts.py).
"""
from __future__ import annotations

import os
import shutil
import time
from typing import TYPE_CHECKING, cast

from ..errors import DatastoreError
from .manifest import DataConfig, DataEntry, RunManifest
from .mounts import Volumes
from .paths import RunPaths
from .process import expand, main_log_name

if TYPE_CHECKING:
    from ..datastores.base import Datastore
    from ..datastores.local import LocalDatastore


class Stager:
    """Owns one run's data on one node; stage_out may be called after stage_in failed."""

    def __init__(self, manifest: RunManifest, paths: RunPaths, env: dict[str, str]):
        self.data: DataConfig = manifest.data or {}
        self.paths = paths
        self.env = env  # gets AZ_BATCHAI_INPUT_<ID> / AZ_BATCHAI_OUTPUT_<ID>
        self.node_index = manifest.node_index
        self.main_log = main_log_name(manifest.spec)
        self.volumes = Volumes(paths.run_dir, env, self._notice)
        self.staged_out = False

    def _log(self, text: str) -> None:
        print(f"[staging] {text}", flush=True)  # the agent's stdout is its log file

    def _notice(self, text: str) -> None:
        """A line the user sees in the run's stream too (how each volume reached the node)."""
        self._log(text)
        if self.node_index == 0:
            os.makedirs(self.paths.stdouterr, exist_ok=True)
            with open(os.path.join(self.paths.stdouterr, self.main_log), "a") as fh:
                fh.write(f"batchai: {text}\n")

    def _datastore(self, entry: DataEntry) -> Datastore:
        from ..datastores.credentials import datastore_for_node
        return datastore_for_node(entry)

    # -- before the job ---------------------------------------------------------------------------
    def stage_in(self) -> None:
        # outputs first: their folders exist even if an input fails, so stage_out always works
        for oid, entry in self.data.get("outputs", {}).items():
            folder = self._output_dir(oid, entry)
            os.makedirs(folder, exist_ok=True)
            self.env[f"AZ_BATCHAI_OUTPUT_{oid}"] = folder
        for name, entry in self.data.get("mounts", {}).items():
            self._mount(entry, os.path.join(self.paths.mounts, name), f"mount {name!r}")
        for path, entry in self.data.get("cluster_mounts", {}).items():
            self._mount(entry, os.path.join(self.paths.mount_root, path), f"cluster volume {path!r}")
        for iid, entry in self.data.get("inputs", {}).items():
            start = time.time()
            if entry.get("mode") == "mount":
                target = os.path.join(self.paths.mounts, f".input-{iid}")
                local = self._mount(entry, target, f"input {iid!r}")
            else:
                base = (os.path.join(self.paths.wd, entry["path_on_compute"])
                        if entry.get("path_on_compute") else os.path.join(self.paths.inputs, iid))
                local = self._datastore(entry).fetch_tree(entry.get("path", ""), base)
            self.env[f"AZ_BATCHAI_INPUT_{iid}"] = local
            self._log(f"input {iid} ready at {local} ({time.time() - start:.2f}s)")

    def _output_dir(self, oid: str, entry: DataEntry) -> str:
        if entry.get("path_on_compute"):
            return os.path.join(self.paths.wd, str(entry["path_on_compute"]))
        return os.path.join(self.paths.staged_outputs, oid)

    def _mount(self, entry: DataEntry, target: str, what: str) -> str:
        """Make `entry` (a datastore path) visible at target; returns the path to use."""
        ds = self._datastore(entry)
        sub = entry.get("path", "")
        if entry["kind"] == "local":
            source = cast("LocalDatastore", ds).local_path(sub)
            if not os.path.exists(source):
                raise DatastoreError(f"{what}: {source!r} of datastore {ds.name!r} does not exist "
                                     "on this node (is the share mounted here?)")
            if entry.get("mode") == "mount" and what.startswith("input"):
                return source
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.lexists(target):
                os.symlink(source, target)
            return target
        if entry["kind"] in ("azure_blob", "azure_file"):
            return self.volumes.attach(ds, entry, target, what, read_only=what.startswith("input"))
        raise DatastoreError(f"{what}: datastore {ds.name!r} of kind {entry['kind']!r} cannot be mounted; "
                             f"use ds.path({sub!r}).as_download() instead")

    # -- after the job ----------------------------------------------------------------------------
    def stage_out(self) -> None:
        """Upload every output (whatever the job's outcome), then unmount; raise if any failed."""
        if self.staged_out:
            return
        self.staged_out = True
        errors: list[str] = []
        for oid, entry in self.data.get("outputs", {}).items():
            folder = self._output_dir(oid, entry)
            start = time.time()
            try:
                ds = self._datastore(entry)
                # the staged folder is the node's own and read by nothing else: moved where the
                # datastore can take files over; a folder in the job's wd stays as it is
                send = ds.push_tree if entry.get("path_on_compute") else ds.move_tree
                count = send(folder, entry["destination"])
                self._log(f"output {oid}: {count} files to {entry['datastore']}:{entry['destination']} "
                          f"({time.time() - start:.2f}s)")
            except Exception as exc:  # noqa: BLE001 -- one failed output does not stop the others
                errors.append(f"output {oid}: {exc}")
        if self.data.get("stdouterr"):
            try:
                self._copy_stdouterr(self.data["stdouterr"])
            except Exception as exc:  # noqa: BLE001 -- the volumes are released all the same
                errors.append(f"stdOutErrPathPrefix: {exc}")
        errors += self.volumes.release()  # after the copy: a prefix on a cluster volume is in it
        if errors:
            raise DatastoreError("; ".join(errors))

    def _copy_stdouterr(self, entry: DataEntry) -> None:
        """std out/err (and job preparation's) to stdOutErrPathPrefix, in Batch AI's layout."""
        start = time.time()
        if entry.get("local_path"):
            dest = os.path.join(expand(str(entry["local_path"]), self.env), str(entry["destination"]))
            os.makedirs(dest, exist_ok=True)
            count = 0
            for name in sorted(os.listdir(self.paths.stdouterr)):
                src = os.path.join(self.paths.stdouterr, name)
                if os.path.isfile(src):
                    shutil.copyfile(src, os.path.join(dest, name))
                    count += 1
            where = dest
        else:
            count = self._datastore(entry).push_tree(self.paths.stdouterr, entry["destination"])
            where = f"{entry['datastore']}:{entry['destination']}"
        self._log(f"stdouterr: {count} files copied to {where} ({time.time() - start:.2f}s)")

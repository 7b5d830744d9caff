"""Data staging on a node: inputs and mounts before the job, outputs after it (also on failure).

The node talks to storage itself with the narrowed credential from its run manifest; data never
passes through the client or the engine.

    inputs   download -> <run>/inputs/<ID> (or <wd>/<path_on_compute>), AZ_BATCHAI_INPUT_<ID>
             mount    -> the folder itself (local/NFS) or a blobfuse2 mount, AZ_BATCHAI_INPUT_<ID>
    outputs  AZ_BATCHAI_OUTPUT_<ID> = <run>/output-dirs/<ID>; uploaded to <path>/<run id>/<suffix>
    mounts   $AZ_BATCHAI_JOB_MOUNT_ROOT/<name>: a link to the folder, or a blobfuse2 mount
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, cast

from ..errors import DatastoreError
from .manifest import DataConfig, DataEntry, RunManifest
from .paths import RunPaths

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
        self.fuse_mounts: list[str] = []
        self.staged_out = False

    def _log(self, text: str) -> None:
        print(f"[staging] {text}", flush=True)  # the agent's stdout is its log file

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
        if entry["kind"] == "azure_blob" and shutil.which("blobfuse2"):
            self._blobfuse(ds, entry, target)
            return os.path.join(target, sub) if sub else target
        tool = "blobfuse2" if entry["kind"] == "azure_blob" else "an SMB (cifs) mount"
        raise DatastoreError(f"{what}: mounting datastore {ds.name!r} ({entry['kind']}) needs {tool} "
                             "on the node, which is not available here; use "
                             f"ds.path({sub!r}).as_download() instead (usually faster for training data)")

    def _blobfuse(self, ds: Datastore, entry: DataEntry, target: str) -> None:
        os.makedirs(target, exist_ok=True)
        cache = os.path.join(self.paths.temp, f"blobfuse-{os.path.basename(target)}")
        os.makedirs(cache, exist_ok=True)
        config = os.path.join(self.paths.temp, f"blobfuse-{os.path.basename(target)}.yaml")
        endpoint = entry["config"]["endpoint"]
        lines = ["components: [libfuse, file_cache, attr_cache, azstorage]",
                 f"file_cache:\n  path: {cache}",
                 "azstorage:", "  type: block", f"  account-name: {entry['config']['account_name']}",
                 f"  container: {entry['config']['container']}", f"  endpoint: {endpoint}",
                 "  mode: sas", f"  sas: \"?{entry['credential'].get('sas_token', '')}\""]
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        proc = subprocess.run(["blobfuse2", "mount", target, f"--config-file={config}"],
                              capture_output=True, text=True, timeout=120, check=False)
        os.unlink(config)  # the SAS stays in memory of blobfuse2 only
        if proc.returncode != 0:
            raise DatastoreError(f"blobfuse2 could not mount {ds.name!r}: "
                                 f"{ds.scrub(proc.stderr.strip()[-300:])}")
        self.fuse_mounts.append(target)

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
                count = self._datastore(entry).push_tree(folder, entry["destination"])
                self._log(f"output {oid}: {count} files to {entry['datastore']}:{entry['destination']} "
                          f"({time.time() - start:.2f}s)")
            except Exception as exc:  # noqa: BLE001 -- one failed output does not stop the others
                errors.append(f"output {oid}: {exc}")
        for target in reversed(self.fuse_mounts):
            subprocess.run(["blobfuse2", "unmount", target], capture_output=True, timeout=60, check=False)
        if errors:
            raise DatastoreError("; ".join(errors))

"""The ssh backend: a fixed pool of hosts reached with paramiko.

A node is a host of the list. Provisioning bootstraps it: connect (host key checked against
known_hosts), check that the configured Python runs and has this version of batchai_jupyter,
create node_root, and note the GPUs and whether mpirun exists; any failure makes the node
`unusable` with the reason (it is probed again with backoff, and idle once a probe succeeds).
Snapshot objects go to the node's object cache once (the engine remembers which digests each
node holds). The agent runs detached, so runs survive the engine.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from ... import __version__
from ...errors import ClusterError, SpecError
from ...history import ACTIVE_STATUSES, RunHistory
from ...node.paths import mca_path, run_key
from ...records import RunRow
from ..base import NodeInfo, NodePool
from ..outcomes import Allocation, Evict
from .transport import SSHTransport

DEFAULT_NODE_ROOT = "~/.batchai-node"
_HOST = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d{1,5}))?$")
_PROBE = r"""
import json, os, shutil, subprocess, sys
out = {"python": sys.executable, "version": list(sys.version_info[:3]), "home": os.path.expanduser("~"),
       "mpirun": shutil.which("mpirun"), "hostname": os.uname().nodename}
try:
    import batchai_jupyter
    out["package"] = batchai_jupyter.__version__
except Exception as exc:
    out["package_error"] = f"{type(exc).__name__}: {exc}"
gpus = 0
if shutil.which("nvidia-smi"):
    try:
        res = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        gpus = sum(1 for line in res.stdout.splitlines() if line.startswith("GPU "))
    except Exception:
        pass
out["gpus"] = gpus
print(json.dumps(out))
"""
# Stop what a lost node still runs for us: every run folder without status.json that is not the
# current attempt of an active run (the engine has already failed or requeued those runs): kill
# the job's process groups and the agent.
_RECLAIM = r"""
import json, os, signal, sys
root, keep = sys.argv[1], set(sys.argv[2:])
killed = 0
runs = os.path.join(root, "runs")
for key in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
    d = os.path.join(runs, key)
    if key in keep or os.path.exists(os.path.join(d, "status.json")):
        continue
    targets = []
    try:
        targets += [("group", int(p)) for p in json.load(open(os.path.join(d, "pids.json"))).values()]
    except Exception:
        pass
    try:
        targets.append(("pid", int(open(os.path.join(d, "agent.started")).read().strip())))
    except Exception:
        pass
    for kind, pid in targets:
        try:
            (os.killpg if kind == "group" else os.kill)(pid, signal.SIGKILL)
            killed += 1
        except OSError:
            pass
    with open(os.path.join(d, "status.json"), "w") as fh:
        json.dump({"error": {"phase": "running", "message": "node lost; processes stopped"}}, fh)
print(killed)
"""
RECLAIM_EVERY = 3.0


def parse_host(entry: str) -> tuple[str, int]:
    """"10.0.0.4" -> ("10.0.0.4", 22); "10.0.0.5:2222" -> ("10.0.0.5", 2222)."""
    m = _HOST.match(str(entry).strip()) if isinstance(entry, str) else None
    if m is None:
        raise SpecError("hosts", f"{entry!r} is not a host", ["'name'", "'name:port'", "'10.0.0.4:2222'"])
    port = int(m.group("port") or 22)
    if not 0 < port < 65536:
        raise SpecError("hosts", f"{entry!r}: port {port} is out of range", "1..65535")
    return m.group("host").strip("[]"), port


def node_id_of(entry: str) -> str:
    host, port = parse_host(entry)
    return host if port == 22 else f"{host}-{port}"


class SSHCompute(NodePool):
    backend = "ssh"

    def __init__(self, config: dict[str, Any], workspace_path: Path, history: RunHistory):
        super().__init__(config, workspace_path, history)
        self._transports: dict[str, SSHTransport] = {}
        self._last_reclaim = 0.0
        self._provisioning: dict[str, threading.Thread] = {}
        self._provisioned: dict[str, Any] = {}     # node id -> setup result or the exception

    # -- configuration ------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Check an ssh cluster's options offline (no connection): hosts, key, known_hosts."""
        config = dict(config)
        hosts = config.get("hosts")
        if not isinstance(hosts, (list, tuple)) or not hosts:
            raise SpecError("hosts", "an ssh cluster needs a non-empty list of hosts",
                            ["hosts=['10.0.0.4', '10.0.0.5:2222']"])
        ids = [node_id_of(h) for h in hosts]
        if len(set(ids)) != len(ids):
            raise SpecError("hosts", f"a host is listed twice: {list(hosts)}", "distinct hosts")
        config["hosts"] = [str(h).strip() for h in hosts]
        if config["max_nodes"] > len(hosts):
            raise SpecError("max_nodes", f"{config['max_nodes']} is more than the {len(hosts)} hosts",
                            f"0..{len(hosts)}")
        for key in ("user", "key_file", "known_hosts", "python", "node_root"):
            value = config.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise SpecError(key, f"must be a non-empty string, got {value!r}")
        mca = config.get("mpi_mca")
        if mca is not None and (not isinstance(mca, dict) or
                                not all(isinstance(k, str) and isinstance(v, (str, int)) for k, v in mca.items())):
            raise SpecError("mpi_mca", f"must be a dict of OpenMPI MCA names to values, got {mca!r}",
                            ["{'plm_rsh_agent': 'ssh -i ~/.ssh/cluster_key', 'btl_tcp_if_include': 'eth0'}"])
        for key in ("key_file", "known_hosts"):
            value = config.get(key)
            if value and not os.path.isfile(os.path.expanduser(value)):
                raise SpecError(key, f"{value!r} does not exist or is not a file", "an existing file")
        if not config.get("known_hosts") and not os.path.isfile(os.path.expanduser("~/.ssh/known_hosts")):
            raise SpecError("known_hosts", "no known_hosts= given and ~/.ssh/known_hosts does not exist; "
                            "host keys are always checked", "a known_hosts file with the hosts' keys")
        return config

    def _slots(self) -> list[str]:
        return [node_id_of(h) for h in self.config.get("hosts", [])]

    def _entry(self, node_id: str) -> tuple[str, int]:
        for entry in self.config.get("hosts", []):
            if node_id_of(entry) == node_id:
                return parse_host(entry)
        raise ClusterError(f"node {node_id!r} is not a host of cluster {self.name!r}")

    # -- nodes ------------------------------------------------------------------------------------
    def transport(self, node: NodeInfo | str) -> SSHTransport:
        node_id = node if isinstance(node, str) else node.id
        got = self._transports.get(node_id)
        if got is None:
            host, port = self._entry(node_id)
            got = SSHTransport(host, port, self.config.get("user"), self.config.get("key_file"),
                               self.config.get("known_hosts"))
            self._transports[node_id] = got
        return got

    def _root_for(self, node_id: str, home: str) -> str:
        host, port = self._entry(node_id)
        root = str(self.config.get("node_root") or DEFAULT_NODE_ROOT)
        root = root.replace("{host}", host).replace("{port}", str(port)).replace("{node}", node_id)
        if root == "~" or root.startswith("~/"):
            root = home.rstrip("/") + root[1:]
        return root

    def node_root(self, node: NodeInfo) -> str:
        root = node.info.get("root")
        if root:
            return str(root)
        return self._root_for(node.id, self.transport(node).home())

    def _provision(self, node_id: str) -> dict[str, Any]:
        transport = self.transport(node_id)
        label = transport.label
        python = self.config.get("python") or "python3"
        try:
            code, out, err = transport.run([python, "-c", _PROBE], timeout=60)
        except ClusterError:
            raise
        except OSError as exc:
            raise ClusterError(f"host {label}: {exc}") from None
        if code != 0:
            raise ClusterError(f"host {label}: {python} does not run (exit code {code}): "
                               f"{(err or out).strip()[-500:]}")
        probe = json.loads(out.strip().splitlines()[-1])
        if "package" not in probe:
            raise ClusterError(f"host {label}: batchai_jupyter cannot be imported by {probe['python']} "
                               f"({probe.get('package_error')}); install it there with "
                               f"pip install batchai-jupyter=={__version__}")
        if probe["package"] != __version__:
            raise ClusterError(f"host {label}: batchai_jupyter {probe['package']} is installed for "
                               f"{probe['python']}, but this workspace runs {__version__}; "
                               f"install the same version on the node")
        if tuple(probe["version"][:2]) < (3, 9):
            raise ClusterError(f"host {label}: Python {'.'.join(map(str, probe['version']))} is too old "
                               f"(3.9 or newer is needed)")
        want = self.gpus_per_node()
        if want and probe["gpus"] < want:
            raise ClusterError(f"host {label}: gpus_per_node={want} but nvidia-smi lists "
                               f"{probe['gpus']} GPU(s)")
        root = self._root_for(node_id, probe["home"])
        code, _out, err = transport.run(["mkdir", "-p", f"{root}/runs", f"{root}/objects"], timeout=30)
        if code != 0:
            raise ClusterError(f"host {label}: cannot create node_root {root}: {err.strip()}")
        mca = self.config.get("mpi_mca") or {}
        transport.write_bytes(mca_path(root), json.dumps(mca).encode(), 0o644)
        host, _port = self._entry(node_id)
        return {"address": host, "gpus": want,
                "info": {"gpu_ids": [str(i) for i in range(want)], "root": root,
                         "python": probe["python"], "mpirun": probe["mpirun"],
                         "hostname": probe["hostname"], "host": label}}

    # -- provisioning in the background: a slow or dead host never stalls the engine loop ---------
    def _add_node(self, node_id: str) -> NodeInfo | None:
        """Start setting the node up; it shows as `preparing` until _collect() sees the result."""
        self.history.put_node(self.name, node_id, "preparing")
        self._start_provision(node_id)
        return None

    def _start_provision(self, node_id: str) -> None:
        if node_id in self._provisioning:
            return

        def work() -> None:
            try:
                self._provisioned[node_id] = self._provision(node_id)
            except Exception as exc:  # noqa: BLE001 — any setup failure makes the node unusable
                self._provisioned[node_id] = exc

        thread = threading.Thread(target=work, name=f"provision-{node_id}", daemon=True)
        self._provisioning[node_id] = thread
        thread.start()

    def _collect(self) -> None:
        """Record finished setups (history is written from the engine's thread only)."""
        for node_id in list(self._provisioned):
            got = self._provisioned.pop(node_id)
            self._provisioning.pop(node_id, None)
            if not any(n["id"] == node_id for n in self.history.nodes(self.name)):
                continue  # the node was removed meanwhile
            if isinstance(got, BaseException):
                self._unusable(node_id, got)
            else:
                self.history.put_node(self.name, node_id, "idle", got.get("address"), None, None,
                                      int(got.get("gpus", 0)), got.get("info", {}))
        for node in self.nodes():  # left half-made by an engine that stopped
            if node.state == "preparing" and node.run_id is None and node.id not in self._provisioning:
                self._start_provision(node.id)

    def allocate(self, run: RunRow, count: int) -> Allocation:
        self._collect()
        return super().allocate(run, count)

    def maintain(self) -> list[Evict]:
        self._collect()
        actions = super().maintain()
        now = time.time()
        if now - self._last_reclaim >= RECLAIM_EVERY:
            self._last_reclaim = now
            for node in self.nodes():
                if node.state == "unusable" and " lost" in (node.error or ""):
                    self._reclaim(node)
        return actions

    def _recover(self, node: NodeInfo) -> None:
        """Probe an unusable host again in the background (maintain() backs off between tries):
        it becomes idle when the probe succeeds, else stays unusable with the new error.
        A lost node is reclaimed by _reclaim instead."""
        if " lost" not in (node.error or ""):
            self._start_provision(node.id)

    def _reclaim(self, node: NodeInfo) -> None:
        """A lost node that answers again: stop its leftovers, then let it be provisioned anew."""
        transport = self.transport(node)
        keep = []  # another cluster of the workspace may share this host and its node_root
        for run in self.history.run_rows(status=ACTIVE_STATUSES):
            keep.append(run_key(run["id"], int(run["properties"].get("attempt", 0))))
        try:
            code, _out, _err = transport.run([self.python(node), "-c", _RECLAIM, self.node_root(node),
                                              *keep], timeout=30)
        except (OSError, ClusterError):
            return  # still gone; try again later
        if code == 0:
            self._remove(node)

    def _deprovision(self, node: NodeInfo) -> None:
        transport = self._transports.pop(node.id, None)
        self.forget_objects(node)
        if transport is not None:
            transport.close()

    def free_port(self, node: NodeInfo) -> int:
        """A TCP port free on the node right now (MASTER_PORT of a run whose first node it is)."""
        code, out, err = self.transport(node).run(
            [self.python(node), "-c", ("import socket; s = socket.socket(); s.bind(('', 0)); "
                                       "print(s.getsockname()[1])")], timeout=30)
        if code != 0:
            raise OSError(f"host {self.transport(node).label}: cannot pick a port: {err.strip()}")
        return int(out.strip())

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

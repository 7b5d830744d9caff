"""RunDriver: the engine's handling of one active run — launch, tail, finalize.

Everything a driver knows it can rebuild from history.db and the nodes' files, which is what
lets a restarted engine pick a run up exactly where the last one stopped: log copies resume at
their own size, metrics at the offset stored with them, and launch is idempotent per run.
"""
from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..compute.base import Compute, NodeInfo
from ..node.launch import main_log_name
from ..node.paths import RunPaths

if TYPE_CHECKING:
    from .loop import Engine

log = logging.getLogger("batchai_jupyter.engine")
LOST_AFTER_SECONDS = float(os.environ.get("BATCHAI_NODE_LOST_SECONDS", "20"))
START_GRACE_SECONDS = 60.0


class RunDriver:
    def __init__(self, engine: "Engine", run: dict[str, Any], compute: Compute, nodes: list[NodeInfo]):
        self.engine = engine
        self.history = engine.history
        self.run = run
        self.id: str = run["id"]
        self.compute = compute
        self.nodes = nodes
        self.attempt = int(run["properties"].get("attempt", 0))
        key = self.id if self.attempt == 0 else f"{self.id}.{self.attempt}"
        self.paths = [RunPaths(compute.node_root(n), key) for n in nodes]
        self.files = engine.workspace.run_files_dir(self.id)
        self.files.mkdir(parents=True, exist_ok=True)
        self.sizes: dict[str, int] = {}          # workspace copy -> bytes copied so far
        self.metric_offsets = self.history.offsets(self.id)
        self.launched_at = time.time()
        self.running = run["status"] in ("Running", "Finalizing")
        self.requeue_after = False
        self.lost: str | None = None
        self.unreachable: dict[int, float] = {}  # node index -> since when it does not answer
        self.peers_stopped = False
        self.beats: dict[int, tuple[bytes, float]] = {}  # node index -> (last heartbeat, seen at)

    # -- launch ------------------------------------------------------------------------------
    def launch(self) -> None:
        """Send objects and manifests, start one agent per node (a no-op where one started)."""
        spec = self.run["spec"]
        snapshot = self.engine.workspace.store.manifest(self.run["snapshot"])
        digests = sorted({v[0] for v in snapshot["files"].values()})
        secrets = self.engine.workspace.secrets.get("runs", self.id)
        port = self.run["properties"].get("master_port") or self._free_port()
        node_list = [{"id": n.id, "address": n.address, "gpus": n.gpus, "gpu_ids": n.gpu_ids,
                      "root": self.compute.node_root(n)} for n in self.nodes]
        props = dict(self.run["properties"], master_port=port, main_log=main_log_name(spec))
        self.history.update_run(self.id, properties=props)
        self.run["properties"] = props
        extra = self.engine.launch_extras(self.run, self.compute)
        for index, (node, paths) in enumerate(zip(self.nodes, self.paths)):
            transport = self.compute.transport(node)
            if transport.exists(paths.started):
                continue
            self.compute.ensure_objects(node, digests, self.engine.workspace.store)
            job = {
                "run_id": self.id, "experiment": self.run["experiment"], "run_key": Path(paths.run_dir).name,
                "node_root": self.compute.node_root(node), "node_index": index, "nodes": node_list,
                "master_port": port, "objects_dir": self.compute.objects_dir(node),
                "shared_dir": self.compute.shared_dir(), "python": self.compute.python(node),
                "snapshot": snapshot, "spec": spec, "secrets": secrets, **extra,
            }
            transport.write_bytes(paths.manifest, json.dumps(job).encode(), 0o600)
            self.compute.launch(node, paths.manifest, paths.agent_log)
        self.launched_at = time.time()

    def _free_port(self) -> int:
        if self.compute.backend == "local":
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                return int(s.getsockname()[1])
        ask = getattr(self.compute, "free_port", None)  # a backend that can ask the first node
        if ask is not None:
            try:
                return int(ask(self.nodes[0]))
            except (OSError, ValueError):
                log.warning("run %s: no free port from node %s", self.id, self.nodes[0].id)
        return random.randint(29500, 39999)

    # -- each engine tick ----------------------------------------------------------------------
    def step(self) -> bool:
        """Tail, follow state, finalize when every agent is done. True once the run is final."""
        statuses = []
        for index, (node, paths) in enumerate(zip(self.nodes, self.paths)):
            transport = self.compute.transport(node)
            try:
                self._tail(index, node, paths)
                raw = transport.read_bytes(paths.status)
            except ConnectionError as exc:  # the node does not answer: lost once it stays so
                since = self.unreachable.setdefault(index, time.time())
                if time.time() - since > LOST_AFTER_SECONDS:
                    self.node_lost(index, f"node {node.id} lost: unreachable for "
                                          f"{time.time() - since:.0f} s ({exc})")
                    return True
                statuses.append(None)
                continue
            self.unreachable.pop(index, None)
            statuses.append(json.loads(raw) if raw else None)
        if not self.running and self._any_running():
            self.running = True
            if self.engine.status_of(self.id) == "Preparing":
                self.history.set_status(self.id, "Running")
            for node in self.nodes:
                self.compute.set_node_state(node, "running", self.id)
        if all(s is not None for s in statuses):
            self.finalize(statuses)
            return True
        self._stop_peers_of_failure(statuses)
        lost = self._lost_node(statuses)
        if lost is not None:
            self.node_lost(*lost)
            return True
        return False

    def _stop_peers_of_failure(self, statuses: list[dict | None]) -> None:
        """One node's job failed: its peers on the other nodes would wait for it forever."""
        if self.peers_stopped or not any(_failed(s) for s in statuses if s is not None):
            return
        self.peers_stopped = True
        for index, (node, paths, status) in enumerate(zip(self.nodes, self.paths, statuses)):
            if status is not None or index in self.unreachable:
                continue
            try:
                raw = self.compute.transport(node).read_bytes(paths.pids)
                if raw:
                    self.compute.kill_groups(node, list(json.loads(raw).values()))
            except (OSError, ValueError):
                log.warning("run %s: cannot stop the processes on node %s", self.id, node.id)

    def _any_running(self) -> bool:
        for index, (node, paths) in enumerate(zip(self.nodes, self.paths)):
            if index in self.unreachable:
                continue
            state = self.compute.transport(node).read_bytes(paths.state)
            if state in (b"running", b"finalizing"):
                return True
        return False

    def _lost_node(self, statuses: list[dict | None]) -> tuple[int, str] | None:
        now = time.time()
        for index, (node, paths, status) in enumerate(zip(self.nodes, self.paths, statuses)):
            if status is not None or index in self.unreachable:
                continue
            raw = self.compute.transport(node).read_bytes(paths.heartbeat)
            if raw is None:
                if now - self.launched_at > START_GRACE_SECONDS:
                    return index, f"the agent on node {node.id} never started"
                continue
            seen = self.beats.get(index)
            if seen is None or seen[0] != raw:  # timed on our clock: a node's clock may differ
                self.beats[index] = (raw, now)
                continue
            if now - seen[1] > LOST_AFTER_SECONDS:
                return index, f"node {node.id} lost: no heartbeat for {now - seen[1]:.0f} s"
        return None

    # -- tailing --------------------------------------------------------------------------------
    def _tail(self, index: int, node: NodeInfo, paths: RunPaths) -> None:
        transport = self.compute.transport(node)
        log_prefix = "logs/" if index == 0 else f"logs/node-{index}/"
        for source, prefix in ((paths.stdouterr, ""), (paths.logs, log_prefix),
                               (paths.artifacts, "")):
            for rel, size in transport.list_files(source).items():
                if rel.endswith(tuple(f".tmp{c}" for c in "0123456789")) or ".tmp" in rel.rsplit("/", 1)[-1]:
                    continue
                self._copy_tail(transport, f"{source}/{rel}", prefix + rel, size)
        self._tail_metrics(transport, node, paths)

    def _copy_tail(self, transport: Any, src: str, rel: str, size: int) -> None:
        dest = self.files / rel
        have = self.sizes.get(rel)
        if have is None:
            have = dest.stat().st_size if dest.exists() else 0
        if size == have:
            self.sizes[rel] = have
            return
        mode = "ab"
        if size < have:  # rewritten by the job: copy it again from the start
            have, mode = 0, "wb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, mode) as out:
            while have < size:
                chunk = transport.read_from(src, have, size - have)
                if not chunk:
                    break
                out.write(chunk)
                have += len(chunk)
        self.sizes[rel] = have

    def _tail_metrics(self, transport: Any, node: NodeInfo, paths: RunPaths) -> None:
        key = (node.id, paths.metrics)
        offset = self.metric_offsets.get(key, 0)
        data = transport.read_from(paths.metrics, offset)
        end = data.rfind(b"\n")
        if end < 0:
            return
        records = []
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "name" in rec:
                records.append(rec)
        offset += end + 1
        self.history.record_metrics(self.id, node.id, paths.metrics, offset, records)
        self.metric_offsets[key] = offset

    # -- the end ------------------------------------------------------------------------------------
    def finalize(self, statuses: list[dict[str, Any]]) -> None:
        if self.engine.status_of(self.id) not in ("CancelRequested",):
            self.history.set_status(self.id, "Finalizing")
        for index, (node, paths) in enumerate(zip(self.nodes, self.paths)):
            self._tail(index, node, paths)  # the last lines, after every process exited
        self._collect_outputs()
        if self.requeue_after:
            self._requeue("the node was taken away (node_deallocation_option=requeue)")
            return
        status, error = self._outcome(statuses)
        self._finish(status, error, statuses)

    def _collect_outputs(self) -> None:
        order = list(range(1, len(self.nodes))) + [0]  # node 0's files win a clash
        for index in order:
            node, paths = self.nodes[index], self.paths[index]
            transport = self.compute.transport(node)
            for rel, _size in transport.list_files(paths.outputs).items():
                transport.get_file(f"{paths.outputs}/{rel}", self.files / "outputs" / rel)

    def _outcome(self, statuses: list[dict[str, Any]]) -> tuple[str, dict[str, Any] | None]:
        exit_codes: dict[str, Any] = {}
        files: dict[str, list[str]] = {}
        for index, st in enumerate(statuses):
            for name, code in st.get("exit_codes", {}).items():
                exit_codes[name if len(statuses) == 1 else f"{index}:{name}"] = code
                files[name if len(statuses) == 1 else f"{index}:{name}"] = st.get("files", {}).get(name, [])
        canceled = any(s.get("canceled") for s in statuses) or self.run_cancel_requested()
        failure = next((s for s in statuses if s.get("error")), None)
        timed_out = next((s for s in statuses if s.get("timed_out")), None)
        if canceled and not failure:
            return "Canceled", {"message": "canceled", "exit_codes": exit_codes}
        if failure:
            err = failure["error"]
            return "Failed", {"message": f"{err['message']} (during {err['phase']})",
                              "exit_codes": exit_codes, "last_lines": []}
        if timed_out:
            return "Failed", {"message": f"killed: {timed_out['reason']}", "exit_codes": exit_codes,
                              "last_lines": self._last_lines(files, None)}
        bad = [(n, c) for n, c in exit_codes.items() if c != 0]
        if bad:
            name, code = next(((n, c) for n, c in bad if c is not None and c > 0), bad[0])
            message = f"process {name} exited with code {code}"
            if name == "job_prep":
                message = f"job preparation exited with code {code}"
            return "Failed", {"message": message, "exit_codes": exit_codes, "failed_process": name,
                              "exit_code": code, "last_lines": self._last_lines(files, name)}
        return "Completed", None

    def _last_lines(self, files: dict[str, list[str]], name: str | None, count: int = 20) -> list[str]:
        candidates = [files.get(name, [])] if name else list(files.values())
        for pair in candidates:
            for rel in reversed(pair):  # stderr first, then stdout
                path = self.files / rel
                if path.exists() and path.stat().st_size:
                    with open(path, "rb") as fh:
                        fh.seek(max(0, path.stat().st_size - 16384))
                        text = fh.read().decode("utf-8", "replace")
                    return text.splitlines()[-count:]
        return []

    def run_cancel_requested(self) -> bool:
        row = self.history.run_row(self.id)
        return bool(row and row["cancel_requested"])

    def _finish(self, status: str, error: dict[str, Any] | None, statuses: list[Any]) -> None:
        self.compute.release(self.id)
        self.engine.workspace.secrets.delete("runs", self.id)
        exit_codes: dict[str, Any] = {}
        for index, st in enumerate(statuses):
            for name, code in (st or {}).get("exit_codes", {}).items():
                exit_codes[name if len(statuses) == 1 else f"{index}:{name}"] = code
        props = dict(self.history.run_row(self.id)["properties"], exit_codes=exit_codes)
        props.pop("waiting", None)
        self.history.set_status(self.id, status, (error or {}).get("message"), error=error,
                                properties=props)
        log.info("run %s %s", self.id, status)

    def _requeue(self, why: str) -> None:
        self.compute.release(self.id)
        attempt = self.attempt + 1
        props = dict(self.history.run_row(self.id)["properties"], attempt=attempt)
        props.pop("master_port", None)
        previous = self.files.parent / f"attempt-{self.attempt}"
        if self.files.exists() and not previous.exists():
            self.files.rename(previous)
        with self.history.tx() as db:
            db.execute("DELETE FROM offsets WHERE run_id=?", (self.id,))
        self.history.set_status(self.id, "Queued", f"requeued: {why}", properties=props, nodes=[])

    def node_lost(self, index: int, why: str) -> None:
        """A node stopped answering: stop what is left, mark the node, fail or requeue."""
        log.warning("run %s: %s", self.id, why)
        for node, paths in zip(self.nodes, self.paths):
            transport = self.compute.transport(node)
            try:
                transport.write_bytes(paths.cancel, b"node lost")
                raw = transport.read_bytes(paths.pids)
                if raw:
                    self.compute.kill_groups(node, list(json.loads(raw).values()))
            except Exception:  # noqa: BLE001 — the lost node itself may not answer
                pass
        lost = self.nodes[index]
        lost.error = why
        self.history.put_node(self.compute.name, lost.id, "unusable", lost.address, None, why,
                              lost.gpus, lost.info)
        for i, (node, paths) in enumerate(zip(self.nodes, self.paths)):
            if i != index:
                self._tail(i, node, paths)
        if self.compute.config.get("node_deallocation_option", "requeue") == "requeue" \
                and self.compute.config.get("requeue_on_node_loss", True):
            self._requeue(why)
        else:
            self._finish("Failed", {"message": why, "exit_codes": {}}, [])


def _failed(status: dict[str, Any]) -> bool:
    return bool(status.get("error") or status.get("timed_out") or
                any(c not in (0, None) for c in status.get("exit_codes", {}).values()))

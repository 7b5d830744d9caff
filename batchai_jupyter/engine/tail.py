"""RunTail: copies a run's node files into the workspace by offset, as they grow.

stdout/stderr, ./logs and artifacts are appended to their workspace copies from the copy's own
size (a file the job rewrote is copied again from the start); metrics.jsonl is read from the
offset stored with the metrics it covers, in one transaction, so a restarted engine neither
drops nor repeats a record.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..compute.base import NodeInfo
from ..compute.transport import Transport
from ..history import RunHistory
from ..node.paths import RunPaths

_TMP_SUFFIXES = tuple(f".tmp{c}" for c in "0123456789")


class RunTail:
    """The workspace copies of one run's node files (runs/<id>/files/)."""

    def __init__(self, history: RunHistory, run_id: str, files: Path):
        self.history = history
        self.run_id = run_id
        self.files = files
        self.sizes: dict[str, int] = {}          # workspace copy -> bytes copied so far
        self.metric_offsets = history.offsets(run_id)

    def tail(self, transport: Transport, index: int, node: NodeInfo, paths: RunPaths) -> None:
        """Copy what is new of node `index`'s logs, artifacts and metrics."""
        log_prefix = "logs/" if index == 0 else f"logs/node-{index}/"
        for source, prefix in ((paths.stdouterr, ""), (paths.logs, log_prefix),
                               (paths.artifacts, "")):
            for rel, size in transport.list_files(source).items():
                if rel.endswith(_TMP_SUFFIXES) or ".tmp" in rel.rsplit("/", 1)[-1]:
                    continue
                self._copy_tail(transport, f"{source}/{rel}", prefix + rel, size)
        self._tail_metrics(transport, node, paths)

    def _copy_tail(self, transport: Transport, src: str, rel: str, size: int) -> None:
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

    def _tail_metrics(self, transport: Transport, node: NodeInfo, paths: RunPaths) -> None:
        key = (node.id, paths.metrics)
        offset = self.metric_offsets.get(key, 0)
        data = transport.read_from(paths.metrics, offset)
        end = data.rfind(b"\n")
        if end < 0:
            return
        records: list[dict[str, Any]] = []
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and "name" in rec:
                records.append(rec)
        offset += end + 1
        self.history.record_metrics(self.run_id, node.id, paths.metrics, offset, records)
        self.metric_offsets[key] = offset

    def collect_outputs(self, transport: Transport, paths: RunPaths) -> None:
        """Copy a node's ./outputs into the workspace (later calls win a clash)."""
        for rel in transport.list_files(paths.outputs):
            transport.get_file(f"{paths.outputs}/{rel}", self.files / "outputs" / rel)

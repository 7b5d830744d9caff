"""Secrets leave the nodes with the run: a manifest still holding them is rewritten without.

The agent drops the secrets from its manifest as soon as it has read it. When it never gets
that far (the engine died between writing the manifest and starting the agent, or the agent was
killed first), the manifest would keep them on the node for good; the engine scrubs every node's
manifest whenever a run ends or is requeued.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from ..compute.base import Compute, NodeInfo
from ..node.manifest import ManifestError, RunManifest
from ..node.paths import RunPaths

log = logging.getLogger("batchai_jupyter.engine")


def scrub_manifests(compute: Compute, nodes: Sequence[NodeInfo], paths: Sequence[RunPaths]) -> None:
    """Rewrite each node's manifest without secrets and datastore credentials (best effort)."""
    for node, run_paths in zip(nodes, paths, strict=True):
        try:
            transport = compute.transport(node)
            raw = transport.read_bytes(run_paths.manifest)
            if not raw or not any(key in raw for key in (b'"secrets"', b'"data"', b'"auth"')):
                continue
            try:
                clean = RunManifest.from_json(raw).without_secrets().to_json().encode()
            except ManifestError:  # not ours to read: keep nothing of it
                clean = b"{}"
            transport.write_bytes(run_paths.manifest, clean, 0o600)
        except Exception:  # noqa: BLE001 — the agent scrubs it, should it ever start there
            log.warning("run folder %s on node %s: cannot scrub its manifest", run_paths.key, node.id)

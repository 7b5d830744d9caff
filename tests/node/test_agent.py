"""The agent's entry point: a manifest it cannot run fails the run with the reason."""
from __future__ import annotations

import json
from pathlib import Path

from batchai_jupyter.node import agent
from batchai_jupyter.node.paths import RunPaths

from .helpers import make_manifest


def test_a_newer_manifest_fails_the_run_once_with_the_reason(tmp_path: Path) -> None:
    paths = RunPaths(str(tmp_path), "r1")
    Path(paths.run_dir).mkdir(parents=True)
    raw = json.loads(make_manifest(node_root=str(tmp_path)).to_json())
    raw["version"] = 2
    Path(paths.manifest).write_text(json.dumps(raw))
    assert agent.main(["agent", paths.manifest]) == 1
    status = json.loads(Path(paths.status).read_text())
    assert status["error"]["phase"] == "preparing" and status["exit_codes"] == {}
    assert "ManifestError: run manifest version 2 is newer" in status["error"]["message"]
    Path(paths.status).unlink()
    assert agent.main(["agent", paths.manifest]) == 1  # a second agent: nothing written again
    assert not Path(paths.status).exists()

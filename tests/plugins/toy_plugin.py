"""A backend and a datastore kind that live outside batchai_jupyter, found through entry points.

What a third-party package would ship: `toyfolders` keeps its nodes as folders under a root
of its own choosing (cluster option `root=`), `toyfolder` is a datastore kind that is a folder
with a fixed layout. tests/test_extending.py installs this module as a distribution on a
temporary path and runs real jobs through both.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from batchai_jupyter.compute.local import LocalCompute
from batchai_jupyter.datastores.local import LocalDatastore
from batchai_jupyter.errors import SpecError


class ToyFolderCompute(LocalCompute):
    """Nodes are folders under the cluster's `root` option (not inside the workspace)."""

    backend = "toyfolders"

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        root = config.get("root")
        if not isinstance(root, str) or not root.startswith("/"):
            raise SpecError("root", f"{root!r} is not an absolute folder", "an absolute path")
        return config

    def __init__(self, config: dict[str, Any], workspace_path: Path, history: Any):
        super().__init__(config, workspace_path, history)
        self.root = Path(config["root"]) / self.name


class ToyFolderDatastore(LocalDatastore):
    """A folder datastore registered under another kind name."""

    kind = "toyfolder"

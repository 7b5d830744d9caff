"""Which workspace the server opens: `--BatchAIServer.workspace`, BATCHAI_WORKSPACE, or the
nearest `.batchai/` above the server's root_dir (then ~/.batchai if it exists); none is fine."""
from __future__ import annotations

import os
from pathlib import Path

from traitlets import Float, Unicode
from traitlets.config import Configurable

from ..layout import WORKSPACE_DIRNAME, WorkspacePaths
from ..workspace import Workspace


class BatchAIServer(Configurable):
    """Settings of the batchai_jupyter server extension (jupyter_server_config, command line)."""

    workspace = Unicode(None, allow_none=True, config=True,
                        help="The workspace folder (its .batchai/ or the folder holding it); default: "
                             "BATCHAI_WORKSPACE, else the nearest .batchai/ above root_dir, else ~/.batchai")
    poll_seconds = Float(0.5, config=True,
                         help="How often the events feed reads the run history while a client listens (s)")
    idle_seconds = Float(10.0, config=True,
                         help="The events feed stops reading this long after the last socket closed (s)")


def open_workspace(setting: str | None, root_dir: str) -> Workspace | None:
    """The workspace to serve, or None (the panel then says how to make one).

    An explicit setting must name a workspace; BATCHAI_WORKSPACE is made if missing, as
    Workspace.from_config() does. Searching starts at root_dir (the server never changes
    its working directory)."""
    if setting:
        return Workspace(_workspace_folder(setting))
    env = os.environ.get("BATCHAI_WORKSPACE")
    if env:
        return Workspace.create(env, exist_ok=True)
    found = WorkspacePaths.find_upward(root_dir)
    if found is not None:
        return Workspace(found.root)
    home = WorkspacePaths.home()
    return Workspace(home.root) if home.is_workspace() else None


def _workspace_folder(setting: str) -> Path:
    """`PATH` may be the workspace itself or the project folder holding its .batchai/."""
    path = Path(setting).expanduser().resolve()
    if not WorkspacePaths.of(path).is_workspace() and WorkspacePaths.of(path / WORKSPACE_DIRNAME).is_workspace():
        return path / WORKSPACE_DIRNAME
    return path

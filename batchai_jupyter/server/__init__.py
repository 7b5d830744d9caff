"""The jupyter_server extension of the JupyterLab panel: REST under <base_url>/batchai/api/v1
(docs/lab.md). Handlers are thin; the Service owns the workspace and the blocking work."""
from __future__ import annotations

from typing import Any

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]

API_PATH = "batchai/api/v1"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "batchai_jupyter.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Open the workspace (or none), make the service and the events hub, add the routes."""
    from jupyter_server.utils import url_path_join

    from ..errors import BatchAIError
    from ..notebook import save_hook
    from .config import BatchAIServer, open_workspace
    from .events import EventHub
    from .routes import ROUTES
    from .service import Service

    settings = BatchAIServer(parent=serverapp)
    try:
        workspace = open_workspace(settings.workspace, serverapp.root_dir)
    except (BatchAIError, OSError):  # the panel still loads and says so; the log has why
        serverapp.log.exception("batchai_jupyter: cannot open the workspace")
        workspace = None
    service = Service(workspace, serverapp.root_dir)
    hubs: dict[str, EventHub] = {}

    def hub_for(ws: Any) -> EventHub:
        key = str(ws.path)
        if key not in hubs:
            hubs[key] = EventHub(ws, service.call, settings.poll_seconds, settings.idle_seconds, serverapp.log)
        return hubs[key]

    if not save_hook.register(serverapp.contents_manager, lambda: service.workspace):  # run summaries
        serverapp.log.warning("batchai_jupyter: this contents manager takes no pre-save hooks")
    web_app = serverapp.web_app
    web_app.settings.update(batchai_service=service, batchai_hub_factory=hub_for, batchai_hubs=hubs,
                            batchai_poll_seconds=max(settings.poll_seconds, 0.5))
    base = url_path_join(web_app.settings["base_url"], API_PATH)
    web_app.add_handlers(".*$", [(url_path_join(base, pattern), handler) for pattern, handler in ROUTES])
    where = workspace.path if workspace is not None else "none (GET /capabilities says how to make one)"
    serverapp.log.info("batchai_jupyter: REST API at %s, workspace %s", base, where)


# the name jupyter_server looked for before 2.0
load_jupyter_server_extension = _load_jupyter_server_extension

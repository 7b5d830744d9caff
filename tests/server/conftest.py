"""A real jupyter_server with our extension, serving the `ws` fixture's workspace."""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (jp_fetch, jp_ws_fetch, jp_serverapp and their hooks)
from traitlets.config import Config

import batchai_jupyter as bai

API = ("batchai", "api", "v1")
Call = Callable[..., Awaitable[Any]]


@pytest.fixture
def jp_server_config(ws: bai.Workspace) -> Config:
    return Config({"ServerApp": {"jpserver_extensions": {"batchai_jupyter.server": True}},
                   "BatchAIServer": {"workspace": str(ws.path), "idle_seconds": 2.0}})


@pytest.fixture
def api(jp_fetch: Any, jp_serverapp: Any) -> Iterator[Call]:
    """`await api("runs", params=...)` -> (status, JSON body or None, response)."""
    async def call(*parts: str, method: str = "GET", body: Any = None, params: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        kwargs: dict[str, Any] = {"method": method, "raise_error": False, "headers": headers or {}}
        if params:
            kwargs["params"] = params
        if body is not None or method in ("POST", "PUT"):
            kwargs["body"] = json.dumps(body if body is not None else {})
        response = await jp_fetch(*API, *parts, **kwargs)
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        return response.code, json.loads(response.body) if is_json and response.body else None, response
    yield call
    for hub in jp_serverapp.web_app.settings["batchai_hubs"].values():  # before the server's loop closes
        hub.stop()

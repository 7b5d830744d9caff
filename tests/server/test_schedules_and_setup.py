"""Schedules through the API, a server without a workspace, and a socket without the token."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tornado.httpclient
from traitlets.config import Config

import batchai_jupyter as bai

from .conftest import Call


async def test_schedules_enable_disable_trigger(api: Call, ws: bai.Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "nightly"
    folder.mkdir()
    ws.create_schedule("nightly", bai.JobSpec(source_directory=folder, command="true"), cron="0 3 * * *")
    code, body, _ = await api("schedules")
    assert code == 200
    (nightly,) = body["schedules"]
    assert nightly["name"] == "nightly" and nightly["state"] == "enabled" and nightly["cron"] == "0 3 * * *"
    assert nightly["next"] and nightly["last"] is None
    code, body, _ = await api("schedules", "nightly:disable", method="POST")
    assert code == 200 and body["state"] == "paused" and ws.schedule("nightly").state == "paused"
    code, body, _ = await api("schedules", "nightly:enable", method="POST")
    assert body["state"] == "enabled"
    code, body, _ = await api("schedules", "nightly:trigger", method="POST")
    assert code == 200 and body["run"]["tags"]["schedule"] == "nightly"
    assert body["last"]["kind"] == "manual" and body["last"]["run_id"] == body["run"]["id"]


async def test_socket_without_token_is_refused(jp_ws_fetch: Any) -> None:
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await jp_ws_fetch("batchai", "api", "v1", "events", headers={"Authorization": "token wrong"})
    assert refused.value.code in (401, 403)


class TestNoWorkspace:
    @pytest.fixture
    def jp_server_config(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Config:
        monkeypatch.delenv("BATCHAI_WORKSPACE", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        return Config({"ServerApp": {"jpserver_extensions": {"batchai_jupyter.server": True}}})

    @pytest.fixture
    def ws(self) -> None:
        return None  # no workspace anywhere above the server's root_dir

    async def test_capabilities_say_none_and_routes_say_how(self, api: Call) -> None:
        code, body, _ = await api("capabilities")
        assert code == 200 and body["workspace"] is None
        code, body, _ = await api("runs")
        assert code == 409 and body["code"] == "no_workspace" and "Workspace.create" in body["hint"]

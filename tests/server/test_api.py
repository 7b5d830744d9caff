"""The REST API over a real server and workspace: clusters, the run list and its errors."""
from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import tornado.httpclient

import batchai_jupyter as bai
from batchai_jupyter.records import NewRun

from .conftest import Call


def insert(ws: bai.Workspace, count: int, prefix: str = "r", **fields: Any) -> list[str]:
    """Finished runs straight into the history, in one transaction (no job runs)."""
    ids = [f"{prefix}_{i:06d}" for i in range(count)]
    base = {"experiment": "bulk", "cluster": "local", "spec": {"command": "true"}, "snapshot": None, "tags": {},
            "priority": 1, "parent_id": None, "properties": {}, "status": "Completed"}
    ws.history.insert_runs([NewRun(**{**base, **fields, "id": run_id}) for run_id in ids])  # type: ignore[typeddict-item]
    return ids


async def test_capabilities(api: Call, ws: bai.Workspace) -> None:
    code, body, _ = await api("capabilities")
    assert code == 200
    assert body["workspace"] == {"name": ws.name, "path": str(ws.path)}
    assert "local" in body["backends"]
    assert body["features"]["events_ws"] is True


async def test_clusters_nodes_and_resize(api: Call, ws: bai.Workspace) -> None:
    code, body, _ = await api("clusters")
    assert code == 200
    local = next(c for c in body["clusters"] if c["name"] == "local")
    assert local["backend"] == "local"
    assert set(local["nodes"]) == {"idle", "running", "preparing", "leaving", "unusable"}
    assert set(local["gpus"]) == {"free", "total"}
    code, body, _ = await api("clusters", "local", "nodes")
    assert code == 200 and isinstance(body["nodes"], list)
    code, body, _ = await api("clusters", "local:resize", method="POST", body={"target_node_count": 2})
    assert code == 200
    assert body["min_nodes"] == body["max_nodes"] == 2
    assert ws.cluster("local").max_nodes == 2
    code, body, _ = await api("clusters", "local:resize", method="POST", body={"target_node_count": -1})
    assert code == 400 and body["code"] == "invalid" and body["field"] == "target_node_count"
    code, body, _ = await api("clusters", "nope", "nodes")
    assert code == 404 and body["code"] == "not_found" and "local" in body["hint"]


async def test_run_list_filters_counts_and_etag(api: Call, ws: bai.Workspace) -> None:
    insert(ws, 5, "done")
    insert(ws, 3, "fail", status="Failed", tags={"lr": "0.1"})
    insert(ws, 2, "other", experiment="other", status="Failed")
    insert(ws, 4, "kid", parent_id="done_000000")
    code, body, response = await api("runs")
    assert code == 200
    assert body["total"] == 10 and body["counts"] == {"Completed": 5, "Failed": 5}
    assert [r["created"] for r in body["runs"]] == sorted((r["created"] for r in body["runs"]), reverse=True)
    parent = next(r for r in body["runs"] if r["id"] == "done_000000")
    assert parent["children"] == 4 and parent["error"] is None
    assert set(parent) == {"id", "number", "experiment", "cluster", "parent_id", "status", "tags", "created",
                           "started", "ended", "duration", "error", "children"}
    code, body, _ = await api("runs", params={"status": "Failed", "experiment": "bulk"})
    assert {r["id"] for r in body["runs"]} == {f"fail_{i:06d}" for i in range(3)}
    assert body["total"] == 3
    code, body, _ = await api("runs", params={"tag": "lr:0.1", "fields": "status"})
    assert len(body["runs"]) == 3 and set(body["runs"][0]) == {"id", "status"}
    code, body, _ = await api("runs", params={"q": "other"})
    assert {r["id"] for r in body["runs"]} == {"other_000000", "other_000001"}
    code, body, _ = await api("runs", "done_000000", "children", params={"sort": "created"})
    assert [r["id"] for r in body["runs"]] == [f"kid_{i:06d}" for i in range(4)]
    code, body, _ = await api("runs", params={"parent": "done_000000", "status": "Completed,Failed"})
    assert body["total"] == 4
    pages, cursor, oldest_first = [], None, []  # oldest first, three at a time
    while True:
        code, body, _ = await api("runs", "done_000000", "children",
                                  params={"sort": "created", "limit": "3"} | ({"cursor": cursor} if cursor else {}))
        pages.append([r["id"] for r in body["runs"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        oldest_first.append(cursor)
    assert pages == [[f"kid_{i:06d}" for i in range(3)], ["kid_000003"]]
    code, body, _ = await api("runs", params={"cursor": oldest_first[0]})  # newest first: the other order
    assert code == 400 and body["field"] == "cursor" and "sort order" in body["message"]

    code, _, response = await api("runs")
    etag = response.headers["ETag"]
    code, body, _ = await api("runs", headers={"If-None-Match": etag})
    assert code == 304 and body is None
    insert(ws, 1, "new")
    code, body, response = await api("runs", headers={"If-None-Match": etag})
    assert code == 200 and response.headers["ETag"] != etag
    assert body["runs"][0]["id"] == "new_000000" and body["counts"]["Completed"] == 6


async def test_typed_errors_are_4xx(api: Call, ws: bai.Workspace) -> None:
    code, body, _ = await api("runs", "no_such_run")
    assert code == 404 and body["code"] == "not_found" and "no_such_run" in body["message"]
    assert body["hint"]
    code, body, _ = await api("runs", params={"status": "Sleeping"})
    assert code == 400 and body["field"] == "status" and "Completed" in body["valid"]
    assert "Sleeping" in body["message"]
    code, body, _ = await api("runs", params={"cursor": "not-a-cursor"})
    assert code == 400 and body["field"] == "cursor"
    code, body, _ = await api("runs", params={"limit": "0"})
    assert code == 400 and body["field"] == "limit"
    code, body, _ = await api("runs", method="POST", body={"experiment": "e", "spec": {"node_count": 0,
                                                                                          "command": "true"}})
    assert code == 400 and body["code"] == "invalid" and body["field"] == "node_count"
    code, body, _ = await api("runs", method="POST", body={"experiment": "e", "spec": {"command": "true"},
                                                           "cluster": "nowhere"})
    assert code == 404 and "nowhere" in body["message"]
    code, body, _ = await api("runs", "x:cancel", method="POST")
    assert code == 404
    code, body, _ = await api("schedules", "none:trigger", method="POST")
    assert code == 404 and body["code"] == "not_found"


async def test_pagination_over_ten_thousand_runs(api: Call, ws: bai.Workspace) -> None:
    ids = insert(ws, 10_000)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "500"} | ({"cursor": cursor} if cursor else {})
        code, body, _ = await api("runs", params=params)
        assert code == 200 and body["total"] == 10_000
        seen.extend(r["id"] for r in body["runs"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 20
    assert len(seen) == len(set(seen)) == 10_000
    rows = {r["id"]: r for r in ws.history.run_rows()}
    assert seen == sorted(ids, key=lambda i: (rows[i]["created"], i), reverse=True)
    tampered = base64.urlsafe_b64encode(json.dumps({"created": "x"}).encode()).decode()
    code, body, _ = await api("runs", params={"cursor": tampered})
    assert code == 400 and body["field"] == "cursor"


async def test_requests_without_token_or_xsrf_are_refused(jp_fetch: Any, jp_serverapp: Any,
                                                          jp_http_port: int, jp_base_url: str) -> None:
    client = tornado.httpclient.AsyncHTTPClient()
    url = f"http://localhost:{jp_http_port}{jp_base_url}batchai/api/v1/runs"
    response = await client.fetch(url, raise_error=False)
    assert response.code in (401, 403)
    assert json.loads(response.body)["code"] == "forbidden"
    # a browser session: the login cookie, but a POST without the _xsrf cookie and header
    token = jp_serverapp.identity_provider.token
    login = await client.fetch(f"http://localhost:{jp_http_port}{jp_base_url}?token={token}",
                               follow_redirects=False, raise_error=False)
    cookies = [c.split(";")[0] for c in login.headers.get_list("Set-Cookie")]
    session = "; ".join(c for c in cookies if not c.startswith("_xsrf"))
    assert session, login.headers
    got = await client.fetch(url, headers={"Cookie": session}, raise_error=False)
    assert got.code == 200
    posted = await client.fetch(url, method="POST", body=json.dumps({"experiment": "e", "spec": {"command": "true"}}),
                                headers={"Cookie": session}, raise_error=False)
    assert posted.code == 403
    assert json.loads(posted.body)["code"] == "forbidden" and "XSRF" in json.loads(posted.body)["hint"]
    assert ws_runs_unchanged(jp_serverapp)


def ws_runs_unchanged(serverapp: Any) -> bool:
    service = serverapp.web_app.settings["batchai_service"]
    return service.workspace.history.count_runs() == 0


@pytest.mark.parametrize("setting", ["workspace", "project"])
def test_workspace_setting_names_the_folder(ws: bai.Workspace, setting: str) -> None:
    from batchai_jupyter.server.config import open_workspace
    path = ws.path if setting == "workspace" else ws.path.parent
    opened = open_workspace(str(path), "/")
    assert opened is not None and opened.path == ws.path


async def test_resize_sets_autoscale_bounds(api: Call, ws: bai.Workspace) -> None:
    code, body, _ = await api("clusters", "local:resize", method="POST", body={"min_nodes": 0, "max_nodes": 3})
    assert code == 200 and (body["min_nodes"], body["max_nodes"]) == (0, 3)
    assert (ws.cluster("local").min_nodes, ws.cluster("local").max_nodes) == (0, 3)
    code, body, _ = await api("clusters", "local:resize", method="POST", body={"max_nodes": 2})
    assert code == 200 and (body["min_nodes"], body["max_nodes"]) == (0, 2)  # min kept
    code, body, _ = await api("clusters", "local:resize", method="POST", body={"min_nodes": 5})
    assert code == 400 and body["field"] == "min_nodes" and "max_nodes 2" in body["message"]
    code, body, _ = await api("clusters", "local:resize", method="POST", body={"max_nodes": "many"})
    assert code == 400 and body["field"] == "max_nodes"
    code, body, _ = await api("clusters", "local:resize", method="POST", body={"min_nodes": 1, "target_node_count": 1})
    assert code == 400 and body["field"] == "target_node_count"
    code, body, _ = await api("clusters", "local:resize", method="POST", body={"nodes": 1})
    assert code == 400 and body["field"] == "nodes" and "min_nodes" in body["valid"]
    code, body, _ = await api("clusters", "nope:resize", method="POST", body={"max_nodes": 1})
    assert code == 404 and body["code"] == "not_found"
    assert ws.cluster("local").max_nodes == 2  # nothing a refused request asked was kept


async def test_experiments_and_tags_list_what_the_filters_offer(api: Call, ws: bai.Workspace) -> None:
    insert(ws, 4, "a", experiment="alpha", tags={"lr": "0.1"})
    insert(ws, 2, "b", experiment="beta", tags={"lr": "0.2", "team": "vision"})
    insert(ws, 3, "kid", experiment="alpha", parent_id="a_000000", tags={"lr": "0.3"})  # children: not counted
    insert(ws, 25, "u", experiment="gamma", tags={}, status="Failed")
    for i in range(25):
        ws.history.update_run(f"u_{i:06d}", tags={"uid": str(i)})
    code, body, _ = await api("experiments")
    assert code == 200
    assert {e["name"]: e["runs"] for e in body["experiments"]} == {"alpha": 4, "beta": 2, "gamma": 25}
    code, body, _ = await api("tags")
    assert code == 200
    by_key = {t["key"]: t for t in body["tags"]}
    assert by_key["lr"]["runs"] == 6
    assert by_key["lr"]["values"] == [{"value": "0.1", "runs": 4}, {"value": "0.2", "runs": 2}]
    assert by_key["team"]["values"] == [{"value": "vision", "runs": 2}]
    assert by_key["uid"]["runs"] == 25 and by_key["uid"]["values"] is None  # too many values to list
    code, body, _ = await api("runs", params={"tag": "lr:0.2"})
    assert code == 200 and body["total"] == 2


async def test_runs_page_with_sparklines(api: Call, ws: bai.Workspace) -> None:
    """`spark=auto` gives each row of the page its first scalar metric, downsampled to at most
    30 points that keep the first, last, lowest and highest; without it no row has `spark`."""
    ids = insert(ws, 3, prefix="sp")
    ws.history.add_metrics(ids[0], [{"name": "note", "kind": "list", "value": ["a"]}]
                           + [{"name": "loss", "step": i, "value": 1.0 / (i + 1)} for i in range(500)]
                           + [{"name": "acc", "step": 0, "value": 0.5}])
    ws.history.add_metrics(ids[0], [{"name": "loss", "step": 250, "value": 9.0}])  # a spike, logged late
    ws.history.add_metrics(ids[1], [{"name": "acc", "step": i, "value": i / 10} for i in range(5)])
    code, body, _ = await api("runs", params={"spark": "auto", "limit": "10"})
    assert code == 200
    by_id = {r["id"]: r["spark"] for r in body["runs"]}
    loss = by_id[ids[0]]
    assert loss["metric"] == "loss" and loss["count"] == 501 and len(loss["points"]) <= 30
    assert loss["points"][0] == [0, 1.0] and [250, 9.0] in loss["points"]
    assert by_id[ids[1]] == {"metric": "acc", "points": [[i, i / 10] for i in range(5)], "count": 5}
    assert by_id[ids[2]] is None  # logged nothing
    code, body, _ = await api("runs", params={"spark": "acc"})
    assert {r["id"]: (r["spark"] or {}).get("count") for r in body["runs"]} == {ids[0]: 1, ids[1]: 5, ids[2]: None}
    code, body, _ = await api("runs")
    assert all("spark" not in r for r in body["runs"])
    code, body, _ = await api("runs", params={"spark": " "})
    assert code == 400 and body["field"] == "spark"

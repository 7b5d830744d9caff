"""GET /experiments and GET /tags: what the panel's filters offer, counted by the history.

Both count top-level runs (children are filtered with their parent), so a filter's number is
what the run list would show with it.
"""
from __future__ import annotations

from typing import Any

from ..workspace import Workspace

#: a tag key with more distinct values than this lists none (ids, keys: one value per run)
MAX_TAG_VALUES = 20


def experiments(ws: Workspace) -> dict[str, Any]:
    """`{experiments: [{name, runs, last_created}]}`, the latest used first (one GROUP BY)."""
    rows = ws.history.query(
        "SELECT experiment, count(*) AS n, max(created) AS last FROM runs WHERE parent_id IS NULL "
        "GROUP BY experiment ORDER BY last DESC")
    return {"experiments": [{"name": r["experiment"], "runs": int(r["n"]), "last_created": r["last"]}
                            for r in rows]}


def tags(ws: Workspace) -> dict[str, Any]:
    """`{tags: [{key, runs, values: [{value, runs}] | null}]}` by key; `values` is null for a key
    with more than MAX_TAG_VALUES distinct values (filtering by key alone still works)."""
    rows = ws.history.query(
        "SELECT t.key AS key, t.value AS value, count(*) AS n FROM runs, json_each(runs.tags) AS t "
        "WHERE runs.parent_id IS NULL GROUP BY t.key, t.value")
    keys: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = keys.setdefault(str(r["key"]), {"key": str(r["key"]), "runs": 0, "values": []})
        entry["runs"] += int(r["n"])
        entry["values"].append({"value": str(r["value"]), "runs": int(r["n"])})
    out = []
    for entry in sorted(keys.values(), key=lambda e: (-e["runs"], e["key"])):
        values = sorted(entry["values"], key=lambda v: (-v["runs"], v["value"]))
        out.append({**entry, "values": values if len(values) <= MAX_TAG_VALUES else None})
    return {"tags": out}

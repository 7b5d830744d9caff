"""`batchai datastore register|show`: the datastore half of the CLI (no secret is ever printed)."""
from __future__ import annotations

from typing import Any

from ..errors import SpecError

_OPTIONS = {"account_name": "account_name", "account_key": "account_key", "sas": "sas_token",
            "connection_string": "connection_string", "container": "container", "share": "share",
            "endpoint": "endpoint", "path": "path"}


def describe(ws: Any, name: str) -> dict[str, Any]:
    """What `datastore show` prints: kind and settings, the credential's kind but never its value."""
    for row in ws.history.datastore_rows():
        if row["name"] == name:
            shown = {k: v for k, v in row["config"].items() if k not in ("account_key", "sas_token",
                                                                        "connection_string")}
            return {"name": name, "kind": row["kind"], "default": bool(row.get("is_default")), **shown}
    known = [r["name"] for r in ws.history.datastore_rows()]
    raise SpecError("--name", f"datastore {name!r} is not registered", known)


def datastore_register_or_show(ws: Any, args: Any) -> dict[str, Any]:
    if args.action == "show":
        return describe(ws, args.name)
    options = {target: getattr(args, flag) for flag, target in _OPTIONS.items()
               if getattr(args, flag, None) not in (None, "")}
    if args.create:
        options["create_if_not_exists"] = True
    ws.register_datastore(args.name, kind=args.kind, **options)
    return describe(ws, args.name)

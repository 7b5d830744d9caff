"""Parents that follow their children (JobSpec(wait_for_children=True)): the rules.

Such a run is Running while any of its child runs is active and then ends with their outcome:
Failed if it or any child failed, else Canceled if it or any child was canceled, else
Completed. A parent with a command runs it first; when its processes end the driver hands it
over here (`hold`) with its own outcome in its properties and its nodes freed. A parent with
no command of its own is Running from its submit and never takes a node. Canceling a waiting
parent cancels its active children; it ends Canceled once they have ended.
"""
from __future__ import annotations

from typing import Any

from ..history import ACTIVE_STATUSES, RunHistory
from ..records import RunRow

#: run property: the parent's own (status, error) while it waits for its children
OWN_OUTCOME = "own_outcome"
#: run property: how many children are active / ended, while it waits
CHILDREN = "children"
#: a parent without a command ends Completed if it got no child within this many seconds
EMPTY_PARENT_SECONDS = 60.0


def waits_for_children(run: RunRow) -> bool:
    """The run is handled here, not by a driver (a parent without a process, or one whose ended)."""
    spec = run["spec"]
    if not spec.get("wait_for_children"):
        return False
    no_process = spec.get("command") is None and spec.get("script") is None
    return no_process or OWN_OUTCOME in run["properties"]


def hold(history: RunHistory, run: RunRow, status: str, error: dict[str, Any] | None,
         props: dict[str, Any]) -> bool:
    """Called as a parent's processes end: keep it Running for its children (True) or not.

    A parent canceled while its processes ran ends Canceled now and asks its active children
    to stop too."""
    if not run["spec"].get("wait_for_children"):
        return False
    if status == "Canceled":
        for child in history.run_rows(parent_id=run["id"], status=ACTIVE_STATUSES):
            history.add_intent("cancel", child["id"])
        return False
    props[OWN_OUTCOME] = {"status": status, "error": error}
    history.set_status(run["id"], "Running", "its processes ended; waiting for its child runs",
                       properties=props, nodes=[])
    return True


def outcome(parent: RunRow, children: list[RunRow]) -> tuple[str, dict[str, Any] | None, str]:
    """(status, error, message) of a parent whose children have all ended."""
    own = parent["properties"].get(OWN_OUTCOME) or {}
    if parent["status"] == "CancelRequested" or own.get("status") == "Canceled":
        return "Canceled", {"message": "canceled"}, "canceled"
    if own.get("status") == "Failed":
        error = own.get("error") or {"message": "failed"}
        return "Failed", error, str(error.get("message"))
    failed = [c for c in children if c["status"] == "Failed"]
    if failed:
        first = failed[0]
        why = (first["error"] or {}).get("message", "")
        message = f"{len(failed)} of {len(children)} child runs failed; the first: {first['id']}: {why}"
        return "Failed", {"message": message, "failed_children": [c["id"] for c in failed]}, message
    canceled = [c for c in children if c["status"] == "Canceled"]
    if canceled:
        message = f"{len(canceled)} of {len(children)} child runs were canceled"
        return "Canceled", {"message": message}, message
    return "Completed", None, f"its {len(children)} child runs completed"

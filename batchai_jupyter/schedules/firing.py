"""Turning one claimed slot into a run: the stored spec, stamped with the schedule's names.

The JobSpec was checked, its data resolved and its folder snapshotted when the version was
made (submission.prepare, as for any submit); firing inserts the run row as Queued with that
spec, adds BATCHAI_SCHEDULE and BATCHAI_SCHEDULED_TIME to its environment, copies the
version's secrets to the run, and names the schedule in the run's properties and tags. With
code="live" the source folder is snapshotted now instead. Used by the engine (scheduled slots)
and by clients (sched.trigger()); neither imports the other.
"""
from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import BatchAIError
from ..run_ids import new_run_id
from ..spec import DEFAULT_PRIORITY, PRIORITIES
from .options import ScheduleOptions
from .store import FireRow, ScheduleStore, VersionRow
from .timing import iso

if TYPE_CHECKING:
    from ..history import RunHistory
    from ..secrets_store import SecretStore
    from ..snapshot import SnapshotStore

#: the secrets-file section holding each version's secret values
SECRETS_SECTION = "schedules"
#: run properties that name a fired run's schedule
PROP_SCHEDULE, PROP_VERSION, PROP_TIME, PROP_FIRE = "schedule", "schedule_version", "scheduled_time", "schedule_fire"


class Backing(Protocol):
    """What firing needs of a workspace: the engine's context and a Workspace both have it."""

    @property
    def path(self) -> Path: ...

    history: RunHistory
    secrets: SecretStore
    store: SnapshotStore


def secrets_key(name: str, version: int) -> str:
    return f"{name}:{version}"


def start(ws: Backing, store: ScheduleStore, version: VersionRow, slot: float, kind: str) -> FireRow | None:
    """Claim the slot and insert its run; None when another process claimed it first."""
    run_id = new_run_id(version["experiment"])
    if not store.claim(version["schedule"], version["version"], slot, kind, "submitting", run_id=run_id,
                       advance=kind != "manual"):
        return None
    fire = store.fire(version["schedule"], version["version"], slot, kind)
    assert fire is not None
    return finish(ws, store, fire, version)


def finish(ws: Backing, store: ScheduleStore, fire: FireRow, version: VersionRow) -> FireRow:
    """Insert the run a claimed fire names (once: a run that exists already is kept)."""
    done = "manual" if fire["kind"] == "manual" else "started"
    run_id = fire["run_id"] or new_run_id(version["experiment"])
    if ws.history.run_status(run_id) is None:
        try:
            _insert(ws, version, fire, run_id)
        except sqlite3.IntegrityError:  # inserted meanwhile by the process that claimed it
            pass
        except (BatchAIError, OSError) as exc:
            store.set_outcome(fire["id"], "failed_to_submit", str(exc), run_id=None)
            return store.fire(fire["schedule"], fire["version"], fire["slot"], fire["kind"]) or fire
    store.set_outcome(fire["id"], done, fire["reason"], run_id=run_id)
    return store.fire(fire["schedule"], fire["version"], fire["slot"], fire["kind"]) or fire


def _insert(ws: Backing, version: VersionRow, fire: FireRow, run_id: str) -> None:
    name = version["schedule"]
    options = ScheduleOptions.from_dict(version["options"])
    cluster = ws.history.cluster_config(version["cluster"])
    if cluster is None or cluster.deleting:
        raise BatchAIError(f"cluster {version['cluster']!r} does not exist any more")
    spec = dict(version["spec"])
    when = iso(fire["slot"], options.tz)
    spec["environment_variables"] = {**spec.get("environment_variables", {}),
                                     "BATCHAI_SCHEDULE": name, "BATCHAI_SCHEDULED_TIME": when}
    info = version["snapshot_info"]
    snapshot_id, props = version["snapshot"], dict(info.get("props", {}))
    if options.code == "live":
        snapshot_id, props = _live_snapshot(ws, info)
    if version["data_refs"] is not None:
        from ..datastores.reference import run_properties
        props.update(run_properties(version["data_refs"], run_id, version["experiment"]))
    props.update({PROP_SCHEDULE: name, PROP_VERSION: version["version"], PROP_TIME: when,
                  PROP_FIRE: fire["kind"]})
    tags = {**version["tags"], "schedule": name}
    values = ws.secrets.get(SECRETS_SECTION, secrets_key(name, version["version"]))
    if values:
        ws.secrets.put("runs", run_id, values)
    try:
        ws.history.insert_run(run_id, version["experiment"], version["cluster"], spec, snapshot_id, tags,
                              PRIORITIES.get(str(spec.get("priority")), PRIORITIES[DEFAULT_PRIORITY]),
                              properties=props)
    except BaseException:
        if ws.history.run_status(run_id) is None:
            ws.secrets.delete("runs", run_id)
        raise


def _live_snapshot(ws: Backing, live: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """code="live": the source folder as it is now (the version's limits, its extra files)."""
    extra = {k: base64.b64decode(v) for k, v in live.get("extra_files", {}).items()}
    snap = ws.store.take(live["source_directory"], max_bytes=int(live["max_bytes"]),
                         max_files=int(live["max_files"]), extra_files=extra, exclude=(ws.path,))
    return snap.id, {"snapshot_files": len(snap.files), "snapshot_bytes": snap.total_bytes,
                     "snapshot_new_files": snap.new_files}

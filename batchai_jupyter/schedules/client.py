"""Schedule: a client's handle on one schedule of the workspace (docs/schedules.md).

Made by `ws.create_schedule(...)` / `ws.schedule(name)`. The spec was checked and snapshotted by
the submit pipeline when the version was made; the engine fires the slots (runner.py). This
module knows neither the engine nor the submit pipeline: the Workspace hands it `ClientPorts`.
"""
from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from .clock import now
from .firing import SECRETS_SECTION, secrets_key, start
from .options import UPDATABLE, ScheduleOptions, as_epoch, as_seconds, zone
from .runner import record_skipped
from .store import FireRow, ScheduleRow, ScheduleStore, VersionRow
from .timing import next_slots

if TYPE_CHECKING:
    from ..run import Run
    from ..spec import JobSpec
    from ..submission import Prepared
    from ..workspace import Workspace

#: prepare(spec, cluster, extra_files) -> the checked, snapshotted spec (submission.prepare)
Prepare = Callable[["JobSpec", str, "Mapping[str, bytes] | None"], "Prepared"]


@dataclass(frozen=True)
class ClientPorts:
    """What a Schedule needs of the rest of the client: the submit pipeline's first half, and
    starting the engine."""

    prepare: Prepare
    wake: Callable[[], None]


@dataclass(frozen=True)
class ScheduleFire:
    """One slot of a schedule and what became of it (`sched.fires()`)."""

    scheduled_time: dt.datetime  # in the schedule's time zone
    kind: str  # scheduled | catchup | manual
    outcome: str  # started | manual | skipped_overlap | missed | paused | failed_to_submit | waiting
    reason: str | None
    run_id: str | None
    version: int


def options_from(cron: str | None = None, tz: str = "UTC", every: object = None, start_at: object = None,
                 end_at: object = None, overlap: str = "skip", catchup: str = "latest",
                 code: str = "snapshot") -> ScheduleOptions:
    """Typed, checked options from the public arguments (SpecError naming the field)."""
    return ScheduleOptions(cron=cron, tz=tz, every=as_seconds(every), start_at=as_epoch("start_at", start_at),
                           end_at=as_epoch("end_at", end_at), overlap=overlap, catchup=catchup,
                           code=code).validate()


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 100 or \
            not all(c.isalnum() or c in "-_." for c in name) or name in (".", ".."):
        raise SpecError("name", f"{name!r} is not a schedule name", "1..100 letters, digits, '-', '_' and '.'")
    return name


def new_version(ws: Workspace, name: str, prepared: Prepared, experiment: str, options: ScheduleOptions,
                tags: Mapping[str, str] | None, extra_files: Mapping[str, bytes] | None) -> VersionRow:
    """The version row for a prepared spec (its secrets go to the secrets file, by version)."""
    info: dict[str, Any] = {"props": prepared.snapshot_properties()}
    if options.code == "live":
        limits = ws.snapshot_limits
        info.update(source_directory=str(prepared.stored_spec()["source_directory"]),
                    max_bytes=limits["max_bytes"], max_files=limits["max_files"],
                    extra_files={k: base64.b64encode(v).decode() for k, v in (extra_files or {}).items()})
    return VersionRow(schedule=name, version=0, experiment=experiment, cluster=prepared.cluster,
                      options=options.to_dict(), spec=prepared.stored_spec(),
                      snapshot=prepared.snapshot.id if prepared.snapshot else None,
                      data_refs=prepared.data_refs, tags=dict(tags or {}), snapshot_info=info,
                      created=time.time())


def keep_secrets(ws: Workspace, name: str, version: int, spec: JobSpec) -> None:
    if spec.secrets:
        ws.secrets.put(SECRETS_SECTION, secrets_key(name, version), {k: str(v) for k, v in spec.secrets.items()})


class Schedule:
    """A schedule of the workspace, by name: its versions, its fires, pause/resume/trigger."""

    def __init__(self, workspace: Workspace, name: str, ports: ClientPorts):
        self.workspace = workspace
        self.name = name
        self._ports = ports
        self._store = ScheduleStore(workspace.history)

    def __repr__(self) -> str:
        row = self._store.row(self.name)
        state = row["state"] if row else "deleted"
        return f"Schedule(name={self.name!r}, version={row['version'] if row else None}, state={state!r})"

    # -- reading -----------------------------------------------------------------------------
    def _row(self) -> ScheduleRow:
        row = self._store.row(self.name)
        if row is None:
            raise SpecError("name", f"no schedule named {self.name!r}", self._store.names() or "none yet")
        return row

    def _version(self, version: int | None = None) -> VersionRow:
        row = self._row()
        found = self._store.version(self.name, version or row["version"])
        if found is None:
            raise SpecError("version", f"schedule {self.name!r} has no version {version}",
                            f"1..{row['version']}")
        return found

    @property
    def version(self) -> int:
        """The current version (1, then one more per update())."""
        return self._row()["version"]

    @property
    def state(self) -> str:
        """enabled, paused, or ended (no slot after end_at)."""
        return self._row()["state"]

    @property
    def options(self) -> ScheduleOptions:
        """When and how it fires: cron or every, tz, start_at/end_at, overlap, catchup, code."""
        return ScheduleOptions.from_dict(self._version()["options"])

    @property
    def cluster(self) -> str:
        """The cluster its runs go to."""
        return self._version()["cluster"]

    @property
    def experiment(self) -> str:
        """The experiment its runs are filed under."""
        return self._version()["experiment"]

    def preview(self, n: int = 5) -> list[dt.datetime]:
        """The next n fire times, in the schedule's time zone (none while it is paused or ended)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise SpecError("n", f"must be a positive integer, got {n!r}", "1, 2, ...")
        row = self._row()
        if row["state"] != "enabled":
            return []
        options = self.options
        tz = zone(options.tz)
        return [dt.datetime.fromtimestamp(s, tz) for s in next_slots(options, max(row["cursor"], now()),
                                                                       row["anchor"], n)]

    def fires(self, limit: int | None = 50) -> list[ScheduleFire]:
        """Every slot so far with its outcome, the reason and the run id; newest first."""
        tz_by_version: dict[int, dt.tzinfo] = {}

        def tz(version: int) -> dt.tzinfo:
            if version not in tz_by_version:
                tz_by_version[version] = zone(ScheduleOptions.from_dict(self._version(version)["options"]).tz)
            return tz_by_version[version]

        return [_fire(f, tz(f["version"])) for f in self._store.fires(self.name, limit)]

    def runs(self) -> list[Run]:
        """The runs this schedule started, newest first."""
        return self.workspace.runs(tags={"schedule": self.name})

    # -- control ------------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop firing; slots that pass while paused are recorded `paused`."""
        self._row()
        self._store.set_state(self.name, "paused")

    def resume(self) -> None:
        """Fire again from now on (slots that passed while paused stay `paused`, none fires late)."""
        row = self._row()
        current = now()
        record_skipped(self._store, row, self.options, current, "paused", "the schedule was paused")
        self._store.set_state(self.name, "enabled", cursor=current)
        self._ports.wake()

    def trigger(self) -> Run:
        """Start a run now, outside the timetable (outcome `manual`; overlap does not apply)."""
        self._row()
        fired = start(self.workspace, self._store, self._version(), now(), "manual")
        if fired is None or fired["run_id"] is None or fired["outcome"] == "failed_to_submit":
            why = fired["reason"] if fired is not None else None
            raise SpecError("schedule", f"schedule {self.name!r} could not start a run: {why or 'the slot was taken'}")
        self._ports.wake()
        return self.workspace.get_run(fired["run_id"])

    def update(self, **changes: Any) -> Schedule:
        """A new version with these changes (spec=, cluster=, cron=, tz=, every=, overlap=, ...).

        Runs fired from now on record the new version; slots already dealt with stay so.
        """
        unknown = sorted(set(changes) - set(UPDATABLE) - {"extra_files"})
        if unknown:
            raise SpecError(unknown[0], "cannot be changed by update()", UPDATABLE)
        old = self._version()
        base = ScheduleOptions.from_dict(old["options"])
        timing = {k: changes[k] for k in ("cron", "tz", "every", "start_at", "end_at", "overlap", "catchup",
                                          "code") if k in changes}
        if "every" in timing:
            timing["every"] = as_seconds(timing["every"])
        for key in ("start_at", "end_at"):
            if key in timing:
                timing[key] = as_epoch(key, timing[key])
        options = base.changed(**timing).validate()
        experiment = changes.get("experiment", old["experiment"])
        if "spec" in changes or "cluster" in changes or "code" in changes or "extra_files" in changes:
            from ..spec import JobSpec
            spec = changes.get("spec") or JobSpec.from_dict(old["spec"])
            prepared = self._ports.prepare(spec, changes.get("cluster", old["cluster"]), changes.get("extra_files"))
            version = new_version(self.workspace, self.name, prepared, experiment, options,
                                  changes.get("tags", old["tags"]), changes.get("extra_files"))
            secrets_from = spec
        else:
            version = VersionRow(**{**old, "options": options.to_dict(), "experiment": experiment,
                                    "tags": dict(changes.get("tags", old["tags"])), "created": time.time()})
            secrets_from = None
        current = now()
        number = self._store.add_version(self.name, version, cursor=max(self._row()["cursor"], current),
                                         anchor=current)
        if self._row()["state"] == "ended":  # e.g. a later end_at: the schedule fires again
            self._store.set_state(self.name, "enabled")
        if secrets_from is not None:
            keep_secrets(self.workspace, self.name, number, secrets_from)
        else:
            values = self.workspace.secrets.get(SECRETS_SECTION, secrets_key(self.name, old["version"]))
            if values:
                self.workspace.secrets.put(SECRETS_SECTION, secrets_key(self.name, number), values)
        self._ports.wake()
        return self

    def delete(self) -> None:
        """Remove the schedule and its record of fires; the runs it started stay."""
        self._row()
        for version in self._store.delete(self.name):
            self.workspace.secrets.delete(SECRETS_SECTION, secrets_key(self.name, version))

    def details(self) -> dict[str, Any]:
        """What `batchai schedule show` prints: name, state, version, options, target, next fires."""
        row, version = self._row(), self._version()
        return {"name": self.name, "state": row["state"], "version": row["version"],
                "experiment": version["experiment"], "cluster": version["cluster"], **version["options"],
                "tags": version["tags"], "next": [t.isoformat() for t in self.preview(3)]}


def _fire(row: FireRow, tz: dt.tzinfo) -> ScheduleFire:
    return ScheduleFire(scheduled_time=dt.datetime.fromtimestamp(row["slot"], tz), kind=row["kind"],
                        outcome=row["outcome"], reason=row["reason"], run_id=row["run_id"], version=row["version"])

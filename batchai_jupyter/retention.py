"""Workspace retention: `ws.prune(...)` and `batchai workspace prune` free what ended runs hold.

A prune picks finished runs (Completed, Failed, Canceled) by age, by experiment and by how many
of each experiment's newest to keep, and removes their files (`runs/<id>/`: logs, outputs,
earlier attempts); the runs' history rows and metrics stay, and `properties["files_pruned"]`
says when the files went. Snapshot objects and manifests no run needs any more go too. A
snapshot stays while any active run (queued ones included), any finished run whose files are
kept, or a schedule (its current version, or one with a fire pending) references it; objects
and manifests written in the last GRACE_SECONDS are never removed (a submit may be taking a
snapshot right now; BATCHAI_PRUNE_GRACE_SECONDS sets it). Nothing an active run uses is
touched, so a prune is safe under a running engine. `dry_run=True` (the default) only reports.
"""
from __future__ import annotations

import datetime as _dt
import os
import pickle
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .history import TERMINAL_STATUSES
from .records import RunRow

if TYPE_CHECKING:
    from .workspace import Workspace

GRACE_SECONDS = 3600.0
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
AGE_FORMS = ("seconds (a number)", "a datetime.timedelta", "'90m'", "'12h'", "'7d'", "'2w'")


@dataclass(frozen=True)
class PrunedRun:
    """One run whose files a prune removes (or would remove)."""

    id: str
    experiment: str
    status: str
    ended: float | None
    bytes: int


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (dry_run: what it would remove), with the bytes freed."""

    dry_run: bool
    runs: list[PrunedRun] = field(default_factory=list)
    snapshots: int = 0          # manifests removed
    objects: int = 0            # snapshot objects removed
    object_bytes: int = 0

    @property
    def run_bytes(self) -> int:
        return sum(r.bytes for r in self.runs)

    @property
    def bytes_freed(self) -> int:
        return self.run_bytes + self.object_bytes

    def rows(self) -> list[dict[str, Any]]:
        """Table rows: one per run, then one for the snapshot store."""
        out: list[dict[str, Any]] = [{"what": f"run {r.id}", "experiment": r.experiment,
                                      "status": r.status, "bytes": r.bytes} for r in self.runs]
        out.append({"what": f"snapshots: {self.snapshots} manifest(s), {self.objects} object(s)",
                    "experiment": "", "status": "", "bytes": self.object_bytes})
        return out


def age_seconds(value: float | str | _dt.timedelta | None) -> float | None:
    """older_than= as seconds (None: any age); SpecError naming the field otherwise."""
    if value is None:
        return None
    if isinstance(value, _dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and _AGE.match(value):
        number, unit = _AGE.match(value).groups()  # type: ignore[union-attr]
        seconds = float(number) * _UNITS[unit]
    else:
        raise SpecError("older_than", f"{value!r} is not an age", AGE_FORMS)
    if seconds < 0:
        raise SpecError("older_than", f"must not be negative, got {value!r}", AGE_FORMS)
    return seconds


def _check(keep_last: int | None, experiments: str | Sequence[str] | None) -> list[str] | None:
    if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int)
                                  or keep_last < 0):
        raise SpecError("keep_last", f"must be an integer >= 0 or None, got {keep_last!r}", "0 or more")
    if experiments is None:
        return None
    names = [experiments] if isinstance(experiments, str) else list(experiments)
    if not all(isinstance(n, str) and n for n in names):
        raise SpecError("experiments", f"must be experiment names, got {experiments!r}",
                        "a name or a list of names")
    return names


def folder_bytes(path: str) -> int:
    total = 0
    for base, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                continue
    return total


def choose_runs(rows: Iterable[RunRow], older_than: float | None, keep_last: int | None,
                experiments: list[str] | None, now: float) -> list[RunRow]:
    """The finished runs a prune takes (rows newest first, as RunHistory returns them)."""
    seen: dict[str, int] = {}
    chosen = []
    for row in rows:
        if row["status"] not in TERMINAL_STATUSES:
            continue
        exp = row["experiment"]
        seen[exp] = seen.get(exp, 0) + 1
        if experiments is not None and exp not in experiments:
            continue
        if keep_last is not None and seen[exp] <= keep_last:
            continue
        ended = row["ended"] or row["created"]
        if older_than is not None and now - ended < older_than:
            continue
        chosen.append(row)
    return chosen


def prune(ws: Workspace, older_than: float | str | _dt.timedelta | None = None,
          keep_last: int | None = None, experiments: str | Sequence[str] | None = None,
          dry_run: bool = True) -> PruneResult:
    """See Workspace.prune."""
    age = age_seconds(older_than)
    names = _check(keep_last, experiments)
    now = time.time()
    rows = ws.history.run_rows()
    chosen = choose_runs(rows, age, keep_last, names, now)
    runs = []
    for row in chosen:
        folder = ws.paths.run_dir(row["id"])
        size = folder_bytes(str(folder)) if folder.exists() else 0
        if size or folder.exists():
            runs.append(PrunedRun(row["id"], row["experiment"], row["status"], row["ended"], size))
    gone = {r["id"] for r in chosen}
    keep = {r["snapshot"] for r in rows if r["snapshot"] and r["id"] not in gone
            and not r["properties"].get("files_pruned")} | schedule_snapshots(ws)
    if not dry_run:
        for run in runs:
            shutil.rmtree(ws.paths.run_dir(run.id), ignore_errors=True)
        for row in chosen:
            if not row["properties"].get("files_pruned"):
                ws.history.update_run(row["id"], properties={**row["properties"], "files_pruned": now})
        # a run submitted meanwhile keeps what it references
        keep |= {r["snapshot"] for r in ws.history.run_rows(status=("Queued",)) if r["snapshot"]}
    grace = float(os.environ.get("BATCHAI_PRUNE_GRACE_SECONDS", GRACE_SECONDS))
    manifests, objects, object_bytes = _prune_store(ws, keep, now - grace, dry_run)
    return PruneResult(dry_run, runs, manifests, objects, object_bytes)


def schedule_snapshots(ws: Workspace) -> set[str]:
    """The snapshots schedules pin: each schedule's current version's, and those of versions
    with a fire still pending (a schedule's next run starts from them)."""
    from .schedules.store import ScheduleStore
    store = ScheduleStore(ws.history)
    out: set[str] = set()
    for row in store.rows():
        versions = {row["version"]} | {f["version"] for f in store.pending(row["name"])}
        for number in versions:
            version = store.version(row["name"], number)
            if version is not None and version["snapshot"]:
                out.add(version["snapshot"])
    return out


def _prune_store(ws: Workspace, keep: set[str], before: float, dry_run: bool) -> tuple[int, int, int]:
    """Remove manifests no kept run references and objects no kept manifest names (of those
    written before `before`)."""
    store = ws.store
    wanted: set[str] = set()
    doomed_manifests = []
    for path in sorted(store.manifests.glob("*.json")):
        snapshot_id = path.stem
        recent = _mtime(str(path)) >= before
        if snapshot_id in keep or recent:
            try:
                wanted |= {v[0] for v in store.manifest(snapshot_id)["files"].values()}
            except (OSError, ValueError, KeyError):
                continue
        else:
            doomed_manifests.append(path)
    doomed: list[tuple[str, int]] = []
    for folder in sorted(store.objects.iterdir()) if store.objects.is_dir() else []:
        if not folder.is_dir() or len(folder.name) != 2:  # packs/: store.prune_packs below
            continue
        for obj in folder.iterdir():
            digest = folder.name + obj.name
            if obj.name.startswith(".") or digest in wanted:
                continue
            st = obj.lstat()
            if st.st_mtime < before:
                doomed.append((str(obj), st.st_size))
    packs = store.prune_packs(wanted, before, dry_run)
    doomed_packed = {d for _index, _size, digests in packs for d in digests}
    if not dry_run:
        for path in doomed_manifests:
            path.unlink(missing_ok=True)
        for obj_path, _size in doomed:
            try:
                os.unlink(obj_path)
            except OSError:
                pass
        _drop_hash_caches(ws, {os.path.basename(os.path.dirname(p)) + os.path.basename(p) for p, _ in doomed}
                          | doomed_packed, {p.stem for p in doomed_manifests})
    return (len(doomed_manifests), len(doomed) + len(doomed_packed),
            sum(s for _, s in doomed) + sum(size for _index, size, _digests in packs))


def _drop_hash_caches(ws: Workspace, digests: set[str], manifests: set[str]) -> None:
    """The (size, mtime) caches that name a removed object or manifest: the next snapshot
    of that folder hashes its files again instead of naming an object that is gone."""
    if not digests and not manifests:
        return
    for path in ws.store.root.joinpath("cache").glob("*.pickle"):
        try:
            with open(path, "rb") as fh:
                cache = pickle.load(fh)  # the workspace's own cache file
            named = {entry[2] for entry in cache.get("files", {}).values()}
            stale = bool(named & digests) or cache.get("last", {}).get("id") in manifests
        except Exception:  # noqa: BLE001 -- an unreadable cache is dropped, it is only a cache
            stale = True
        if stale:
            path.unlink(missing_ok=True)


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0

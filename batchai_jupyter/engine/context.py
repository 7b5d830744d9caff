"""The narrow context the engine's steps and run drivers get, and what a step answers.

Steps and RunDrivers see the workspace through this object only: its paths, snapshot store,
secrets and history, the cluster's Compute by name, the manifest extras and a logger. They
never hold the Engine (its lock, signals and loop are the Engine's alone).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..compute import make_compute
from ..compute.base import Compute
from ..history import RunHistory
from ..layout import WorkspacePaths
from ..node.manifest import ManifestExtras
from ..records import RunRow
from ..schedules.clock import now as schedule_clock
from ..secrets_store import SecretStore
from ..snapshot import SnapshotStore

log = logging.getLogger("batchai_jupyter.engine")
TICK = 0.05  # seconds between two passes of the loop while anything is going on

#: extra fields of a run's node manifest: (run row, its cluster's Compute) -> fields
LaunchExtras = Callable[[RunRow, Compute], ManifestExtras]


class Computes:
    """One Compute per cluster, made on first use; new settings reach the live object."""

    def __init__(self, path: Path, history: RunHistory):
        self.path = path
        self.history = history
        self._computes: dict[str, Compute] = {}
        self._signatures: dict[str, str] = {}

    def get(self, name: str) -> Compute | None:
        """The cluster's Compute, or None when the cluster does not exist (any more)."""
        row = self.history.cluster_row(name)
        if row is None:
            return None
        signature = json.dumps(row, sort_keys=True)
        if self._signatures.get(name) != signature or name not in self._computes:
            if name in self._computes:
                self._computes[name].config = row  # keep connections; take the new settings
            else:
                self._computes[name] = make_compute(row, self.path, self.history)
            self._signatures[name] = signature
        return self._computes[name]

    def drop(self, name: str) -> None:
        """Close the cluster's Compute and forget it (the cluster is deleted)."""
        compute = self._computes.pop(name, None)
        self._signatures.pop(name, None)
        if compute is not None:
            compute.close()

    def __iter__(self) -> Iterator[Compute]:
        return iter(list(self._computes.values()))

    def close_all(self) -> None:
        for compute in self:
            compute.close()


@dataclass
class EngineContext:
    """What the engine's steps and drivers may use of the workspace."""

    paths: WorkspacePaths
    history: RunHistory
    store: SnapshotStore
    secrets: SecretStore
    computes: Computes
    launch_extras: LaunchExtras
    log: logging.Logger = field(default=log)
    #: what time it is for schedules: time.time() unless BATCHAI_CLOCK_FILE moves it (tests)
    clock: Callable[[], float] = field(default=schedule_clock)

    @property
    def path(self) -> Path:
        """The workspace folder."""
        return self.paths.root

    def compute(self, name: str) -> Compute | None:
        return self.computes.get(name)

    def run_files_dir(self, run_id: str) -> Path:
        return self.paths.run_files(run_id)


@dataclass(frozen=True)
class Wait:
    """A step's answer: when it wants to run again. None: it has nothing to do or wait for.

    The engine sleeps until the earliest `next_due` or `look_at`, and exits once every step has
    answered None for `idle_exit` seconds. `look_at`: nothing to do, but look again by then
    (upkeep on a timer); it does not keep the engine up.
    """

    next_due: float | None = None
    look_at: float | None = None

    @classmethod
    def idle(cls) -> Wait:
        return cls(None)

    @classmethod
    def within(cls, seconds: float) -> Wait:
        return cls(time.time() + seconds)

    @property
    def wake_at(self) -> float | None:
        """When the step wants to run again, busy or not (None: only when something happens)."""
        times = [t for t in (self.next_due, self.look_at) if t is not None]
        return min(times) if times else None

    @property
    def busy(self) -> bool:
        return self.next_due is not None


class Step(Protocol):
    """One part of the engine loop (intents, queue, drivers, maintenance)."""

    name: str

    def step(self, ctx: EngineContext) -> Wait: ...

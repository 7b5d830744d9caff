"""What a backend answers the engine: typed outcomes the engine applies to run state.

A backend never writes a run's row or its secrets; it says what happened and the engine, the
only writer of run state, records it:

- `allocate(run, count)` answers `Pending` (try again later), `Granted` (these nodes now hold
  the run) or `Refused` (the run can never start here: the engine fails it with the message).
- `maintain()` answers a list of `Evict` (a node was taken away under a run by a shrink).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from .base import NodeInfo


@dataclass(frozen=True)
class Pending:
    """No nodes yet. `reason` is shown to users (the run's `waiting` property); `properties`
    are merged into the run's properties (e.g. the Slurm job id and state), {} when unchanged."""

    reason: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Granted:
    """A gang of nodes now marked for the run; `properties` are merged into the run's."""

    nodes: list[NodeInfo]
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Refused:
    """The run cannot start on this cluster; the engine fails it with `message`."""

    message: str


Allocation: TypeAlias = Pending | Granted | Refused


@dataclass(frozen=True)
class Evict:
    """A resize took a busy node away: stop the run on it, then requeue it or end it."""

    run_id: str
    requeue: bool

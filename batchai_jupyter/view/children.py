"""Child runs compared: their hyperparameters and tags, a primary metric, the best child, the
parent's progress, and the charts of a sweep. Pure reads of the history; no widget code."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ..history import TERMINAL_STATUSES
from . import render
from .metrics import is_number

if TYPE_CHECKING:
    from ..history import RunHistory

GOALS = ("maximize", "minimize")
ACTIVE = ("Queued", "Preparing", "Running", "Finalizing", "CancelRequested")


def check_goal(goal: str | None, metric: str | None) -> str:
    """The goal given, or the likely one for the metric's name (losses and errors go down)."""
    if goal is None:
        low = (metric or "").lower()
        return "minimize" if any(w in low for w in ("loss", "err", "mse", "mae", "rmse")) \
            else "maximize"
    if goal not in GOALS:
        raise SpecError("goal", f"{goal!r} is not a goal", GOALS)
    return goal


def hyperparameters(arguments: Sequence[str]) -> dict[str, Any]:
    """`--lr 0.1 --layers=3 --fast` -> {"lr": 0.1, "layers": 3, "fast": True}: a script's
    options as the sweep's columns (numbers as numbers)."""
    out: dict[str, Any] = {}
    args = list(arguments)
    i = 0
    while i < len(args):
        word = str(args[i])
        i += 1
        if not word.startswith("-") or word in ("-", "--") or _is_number_text(word):
            continue
        name, eq, value = word.lstrip("-").partition("=")
        if not eq:
            if i < len(args) and not (str(args[i]).startswith("-") and not _is_number_text(str(args[i]))):
                value = str(args[i])
                i += 1
            else:
                out[name] = True
                continue
        out[name] = _number(value)
    return out


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


@dataclass
class Sweep:
    """The child runs of one parent, ready to show."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    hparams: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)      # scalar metrics every child logs
    primary: str | None = None
    goal: str = "maximize"
    best: str | None = None                               # run id

    @property
    def columns(self) -> list[str]:
        return (["#", "run id", "status", "duration", *self.hparams,
                 *(f"tag:{t}" for t in self.tags), *([self.primary] if self.primary else [])])

    def progress(self) -> str:
        """The children's progress for the parent's badge: "3/12 running, 5 done"."""
        if not self.rows:
            return ""
        counts = Counter(r["status"] for r in self.rows)
        total = len(self.rows)
        parts = []
        for label, statuses in (("running", ("Preparing", "Running", "Finalizing")),
                                ("queued", ("Queued",)), ("done", TERMINAL_STATUSES)):
            n = sum(counts[s] for s in statuses)
            if n:
                parts.append(f"{n}/{total} {label}")
        failed = counts["Failed"]
        if failed:
            parts.append(f"{failed} failed")
        return ", ".join(parts)


def read_sweep(history: RunHistory, run_id: str, primary: str | None = None,
               goal: str | None = None) -> Sweep:
    """The children of `run_id` (oldest first) with their hyperparameters, tags and the last
    value of the primary metric (default: the first metric every child logs)."""
    rows = list(reversed(history.run_rows(parent_id=run_id)))
    if not rows:
        return Sweep(goal=check_goal(goal, primary))
    ids = [r["id"] for r in rows]
    per_child = [set(history.metric_names([i], kind="scalar")) for i in ids]
    logged = [s for s in per_child if s]
    common = sorted(set.intersection(*logged)) if logged else []
    union = sorted(set().union(*per_child))
    if primary is None and common:
        primary = common[0]
    goal = check_goal(goal, primary)
    last = history.last_metric_values(ids, primary, kind="scalar") if primary else {}
    hp_names: list[str] = []
    tag_names: list[str] = []
    for r in rows:
        hp = hyperparameters((r.get("spec") or {}).get("arguments") or [])
        r["hparams"] = hp
        hp_names += [k for k in hp if k not in hp_names]
        tag_names += [k for k in (r.get("tags") or {}) if k not in tag_names]
        r["metric"] = last.get(r["id"])
        r["duration"] = render.duration_text(r)
    tag_names = [t for t in tag_names if t not in hp_names]
    scored = [r for r in rows if is_number(r["metric"])]
    best = None
    if scored:
        pick = max if goal == "maximize" else min
        best = pick(scored, key=lambda r: r["metric"])["id"]
    return Sweep(rows, hp_names, tag_names, common or union, primary, goal, best)


def cells(sweep: Sweep, row: dict[str, Any]) -> list[Any]:
    """One child's values in the order of `sweep.columns`."""
    out: list[Any] = [row["number"], row["id"], row["status"], row["duration"]]
    out += [row["hparams"].get(h) for h in sweep.hparams]
    out += [(row.get("tags") or {}).get(t) for t in sweep.tags]
    if sweep.primary:
        out.append(row["metric"])
    return out


def sweep_table_html(sweep: Sweep) -> str:
    """The static table: the best child marked with a star."""
    body = []
    for r in sweep.rows:
        values = ["" if v is None else render.fmt_value(v) for v in cells(sweep, r)]
        if r["id"] == sweep.best:
            values[1] = "★ " + values[1]
        body.append(values)
    return render.table(sweep.columns, body, "bai-children")


def sweep_charts_html(history: RunHistory, sweep: Sweep) -> str:
    """The primary metric per child (its curve over steps, and its last value as bars) and the
    hyperparameters against it (parallel coordinates)."""
    if not sweep.primary or not sweep.rows:
        return ""
    ids = [r["id"] for r in sweep.rows]
    curves: dict[str, list[tuple[float, float]]] = {}
    number = {r["id"]: f"#{r['number']}" for r in sweep.rows}
    for m in history.metric_rows(ids, sweep.primary):
        pts = curves.setdefault(number[m["run_id"]], [])
        if is_number(m["value"]):
            pts.append((m["step"] if m.get("step") is not None else len(pts), m["value"]))
    best = number.get(sweep.best or "")
    parts = []
    if any(len(p) > 1 for p in curves.values()):
        parts.append(render.line_chart(f"{sweep.primary} by step, per child run", series=curves))
    parts.append(render.bar_chart(sweep.primary, [(number[r["id"]], r["metric"]) for r in sweep.rows
                                                   if is_number(r["metric"])], best))
    axes = [*sweep.hparams, sweep.primary]
    coords = [(number[r["id"]], [*(r["hparams"].get(h) for h in sweep.hparams), r["metric"]])
              for r in sweep.rows if is_number(r["metric"])]
    if sweep.hparams:
        parts.append(render.parallel_coordinates(axes, coords, best))
    return f'<div class="bai-sweep-charts">{"".join(parts)}</div>'

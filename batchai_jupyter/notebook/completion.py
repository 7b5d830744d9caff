"""Tab completion of the magics through IPython's completer hooks: options, and the values
of --cluster, --experiment, --distribution, --tz, --overlap, --catchup, run ids and schedule
names, read from the workspace each time."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.error import TryNext

JOB_ACTIONS = ("list", "show", "stream", "cancel", "files")
RUN_ACTIONS = ("show", "stream", "cancel", "files")
CLUSTER_ACTIONS = ("list", "show", "create", "resize", "update", "delete")
BACKENDS = ("local", "ssh", "slurm")


def _workspace() -> Any:
    from ..errors import BatchAIError
    from ..workspace import Workspace
    try:
        return Workspace.from_config()
    except (BatchAIError, OSError):
        return None


def cluster_names() -> list[str]:
    ws = _workspace()
    return [c.name for c in ws.clusters()] if ws is not None else []


def experiment_names() -> list[str]:
    ws = _workspace()
    return list(ws.history.experiments()) if ws is not None else []


def run_ids(limit: int = 50) -> list[str]:
    ws = _workspace()
    return [r.id for r in ws.runs(limit=limit)] if ws is not None else []


Values = dict[str, Callable[[], list[str]]]


def option_values(distributions: list[str]) -> Values:
    """What each option that takes a value completes to."""
    return {
        "--cluster": cluster_names, "-c": cluster_names,
        "--experiment": experiment_names, "-e": experiment_names,
        "--distribution": lambda: list(distributions),
        "--backend": lambda: list(BACKENDS),
        "--node-deallocation-option": lambda: ["requeue", "terminate", "waitforjobcompletion"],
    }


def _words(event: Any) -> tuple[list[str], str]:
    """(words before the one being completed, the one being completed)."""
    line = event.line.split("\n", 1)[0]
    words = line.split()
    current = "" if line.endswith((" ", "\t")) else (words.pop() if words else "")
    return words, current


def _pick(candidates: list[str], current: str) -> list[str]:
    return [c for c in candidates if c.startswith(current)]


def complete_job(event: Any, options: list[str], values: Values) -> list[str]:
    """%%batchai_job and %batchai_job: options, option values, actions and run ids."""
    words, current = _words(event)
    args = words[1:]
    if "--" in args:
        raise TryNext  # the script's own arguments: the usual completions
    if args and args[-1] in values:
        return _pick(values[args[-1]](), current)
    cell = words[0].startswith("%%")
    if not cell and args and args[0] in RUN_ACTIONS and len(args) == 1:
        return _pick(run_ids(), current)
    if not cell and args and args[0] == "stream" and args[-1] in ("-f", "--file"):
        raise TryNext
    if current.startswith("-") or cell or (args and args[0].startswith("-")):
        return _pick([*options, "--"], current)
    if not args:
        return _pick([*JOB_ACTIONS, *options], current)
    return []


def complete_cluster(event: Any, values: Values) -> list[str]:
    """%batchai_cluster: its actions, cluster names and option values."""
    words, current = _words(event)
    args = words[1:]
    if not args:
        return _pick(list(CLUSTER_ACTIONS), current)
    if args[-1] in values:
        return _pick(values[args[-1]](), current)
    if len(args) == 1 and args[0] in ("show", "resize", "update", "delete"):
        return _pick(cluster_names(), current)
    if current.startswith("-"):
        options = {"create": ["--backend", "--max-nodes", "--min-nodes", "--idle-seconds",
                              "--gpus-per-node", "--hosts", "--user", "--key-file", "--known-hosts",
                              "--python", "--node-root", "--partition", "--login-host",
                              "--shared-root"],
                   "update": ["--min-nodes", "--max-nodes", "--idle-seconds"],
                   "resize": ["--node-deallocation-option"], "delete": ["--force"]}
        return _pick(options.get(args[0], []), current)
    return []


def schedule_names() -> list[str]:
    ws = _workspace()
    return [sched.name for sched in ws.schedules()] if ws is not None else []


def time_zones() -> list[str]:
    import zoneinfo
    return sorted(zoneinfo.available_timezones())


def schedule_values(values: Values) -> Values:
    """The job options' values plus the schedule's own."""
    from ..schedules.options import CATCHUPS, CODE_MODES, OVERLAPS
    return {**values, "--tz": time_zones, "--overlap": lambda: list(OVERLAPS),
            "--catchup": lambda: list(CATCHUPS), "--code": lambda: list(CODE_MODES)}


def complete_schedule(event: Any, options: list[str], actions: list[str], values: Values) -> list[str]:
    """%%batchai_schedule NAME --cron ... and %batchai_schedule ACTION NAME: options, their
    values (time zones, overlap, catchup, code), actions and schedule names."""
    words, current = _words(event)
    args = words[1:]
    if "--" in args:
        raise TryNext  # the script's own arguments
    if args and args[-1] in values:
        return _pick(values[args[-1]](), current)
    if words[0].startswith("%%"):
        return _pick([*options, "--"], current) if current.startswith("-") or args else []
    if not args:
        return _pick(actions, current)
    if len(args) == 1 and args[0] in actions and args[0] != "list":
        return _pick(schedule_names(), current)
    return []


def register_schedule_completion(ip: Any, options: list[str], actions: list[str]) -> None:
    """Install the completer of %batchai_schedule and %%batchai_schedule."""
    from ..spec import DISTRIBUTIONS
    values = schedule_values(option_values([str(d) for d in DISTRIBUTIONS]))
    for key in ("%batchai_schedule", "%%batchai_schedule"):
        ip.set_hook("complete_command",
                    lambda _shell, event: complete_schedule(event, options, actions, values), str_key=key)


def register_completion(ip: Any, job_options: list[str], distributions: list[str]) -> None:
    """Install the completers for the magics' names (line and cell forms)."""
    values = option_values(distributions)
    for key in ("%batchai_job", "%%batchai_job"):
        ip.set_hook("complete_command", lambda _shell, event: complete_job(event, job_options, values),
                    str_key=key)
    ip.set_hook("complete_command", lambda _shell, event: complete_cluster(event, values),
                str_key="%batchai_cluster")

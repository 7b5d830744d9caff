"""What a finished run's status.json files mean: its final status and error (pure functions)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

Status = dict[str, Any]  # one node's status.json


def failed(status: Status) -> bool:
    """Did anything of this node's job fail (an error, a timeout, a non-zero exit)?"""
    return bool(status.get("error") or status.get("timed_out") or
                any(c not in (0, None) for c in status.get("exit_codes", {}).values()))


def exit_codes(statuses: list[Status | None]) -> dict[str, Any]:
    """Process name -> exit code ("<node index>:<name>" on a multi-node run)."""
    codes: dict[str, Any] = {}
    for index, st in enumerate(statuses):
        for name, code in (st or {}).get("exit_codes", {}).items():
            codes[name if len(statuses) == 1 else f"{index}:{name}"] = code
    return codes


def run_outcome(statuses: list[Status], files: Path,
                cancel_requested: bool) -> tuple[str, dict[str, Any] | None]:
    """(status, error) of a run whose every node wrote its status.json."""
    codes: dict[str, Any] = {}
    logs: dict[str, list[str]] = {}
    for index, st in enumerate(statuses):
        for name, code in st.get("exit_codes", {}).items():
            key = name if len(statuses) == 1 else f"{index}:{name}"
            codes[key] = code
            logs[key] = st.get("files", {}).get(name, [])
    canceled = any(s.get("canceled") for s in statuses) or cancel_requested
    failure = next((s for s in statuses if s.get("error")), None)
    timed_out = next((s for s in statuses if s.get("timed_out")), None)
    if canceled and not failure:
        return "Canceled", {"message": "canceled", "exit_codes": codes}
    if failure:
        err = failure["error"]
        return "Failed", {"message": f"{err['message']} (during {err['phase']})",
                          "exit_codes": codes, "last_lines": []}
    if timed_out:
        return "Failed", {"message": f"killed: {timed_out['reason']}", "exit_codes": codes,
                          "last_lines": last_lines(files, logs, None)}
    bad = [(n, c) for n, c in codes.items() if c != 0]
    if bad:
        name, code = next(((n, c) for n, c in bad if c is not None and c > 0), bad[0])
        message = f"process {name} exited with code {code}"
        if name == "job_prep":
            message = f"job preparation exited with code {code}"
        rank = mpi_failed_rank(_tail(files, logs.get(name, [])[-1:])) if name.endswith("mpirun") else None
        if rank is not None:
            message += f" (MPI rank {rank} failed first)"
        return "Failed", {"message": message, "exit_codes": codes, "failed_process": name,
                          "exit_code": code, "last_lines": last_lines(files, logs, name)}
    return "Completed", None


def last_lines(files: Path, logs: dict[str, list[str]], name: str | None, count: int = 20) -> list[str]:
    """The last lines of a process's output (stderr first), from the workspace copies; of an
    mpirun, without OpenMPI's boxed messages, which would otherwise fill the tail and hide the
    failed rank's traceback printed before them."""
    candidates = [(name, logs.get(name, []))] if name else list(logs.items())
    for key, pair in candidates:
        lines = _tail(files, list(reversed(pair)))  # stderr first, then stdout
        if lines:
            return (without_mpi_banners(lines) if key.endswith("mpirun") else lines)[-count:]
    return []


def _tail(files: Path, names: list[str]) -> list[str]:
    """The last 64 KiB of the first of these run files that is not empty, as lines."""
    for rel in names:
        path = files / rel
        if path.exists() and path.stat().st_size:
            with open(path, "rb") as fh:
                fh.seek(max(0, path.stat().st_size - 65536))
                return fh.read().decode("utf-8", "replace").splitlines()
    return []


_MPI_FIRST = re.compile(r"^\s*Process name:\s*\[\[\d+,\d+\],(\d+)\]")


def mpi_failed_rank(lines: list[str]) -> int | None:
    """The rank mpirun names as the first to exit non-zero ("Process name: [[6522,1],1]")."""
    for line in lines:
        match = _MPI_FIRST.match(line)
        if match:
            return int(match.group(1))
    return None


#: the rule of dashes OpenMPI draws above and below each of its messages, and its longest message
_MPI_RULE = re.compile(r"^-{40,}$")
_MPI_BOX_LINES = 40
#: "[host:pid] 1 more process has sent help message help-mpi-api.txt / mpi-abort" and its follow-up
_MPI_NOTE = re.compile(r"^\[[^\]\s]+:\d+\] (\d+ more process|Set MCA parameter)")


def without_mpi_banners(lines: list[str]) -> list[str]:
    """The lines without OpenMPI's boxed messages ("mpirun detected that one or more processes
    exited with non-zero status...": a rule, at most a few dozen lines, a rule) and its notes."""
    rules = [i for i, line in enumerate(lines) if _MPI_RULE.match(line.strip())]
    drop: set[int] = set()
    k = 0
    while k + 1 < len(rules):
        first, last = rules[k], rules[k + 1]
        if last - first <= _MPI_BOX_LINES:
            drop.update(range(first, last + 1))
            k += 2
        else:  # a rule of the job's own output, not a box's
            k += 1
    return [line for i, line in enumerate(lines) if i not in drop and not _MPI_NOTE.match(line)]

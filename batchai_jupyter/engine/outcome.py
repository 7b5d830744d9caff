"""What a finished run's status.json files mean: its final status and error (pure functions)."""
from __future__ import annotations

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
        return "Failed", {"message": message, "exit_codes": codes, "failed_process": name,
                          "exit_code": code, "last_lines": last_lines(files, logs, name)}
    return "Completed", None


def last_lines(files: Path, logs: dict[str, list[str]], name: str | None, count: int = 20) -> list[str]:
    """The last lines of a process's output (stderr first), from the workspace copies."""
    candidates = [logs.get(name, [])] if name else list(logs.values())
    for pair in candidates:
        for rel in reversed(pair):  # stderr first, then stdout
            path = files / rel
            if path.exists() and path.stat().st_size:
                with open(path, "rb") as fh:
                    fh.seek(max(0, path.stat().st_size - 16384))
                    text = fh.read().decode("utf-8", "replace")
                return text.splitlines()[-count:]
    return []

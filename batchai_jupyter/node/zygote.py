"""A warm starter of node agents on the engine's own machine (local clusters).

    python -m batchai_jupyter.node.zygote <cluster root>

A fresh agent interpreter spends most of its start importing the package (tens of ms per run,
the largest part of a short run's overhead). This process imports the agent once and then, for
every request line on its stdin (JSON: {"manifest": path, "log": path}), forks an agent that is
detached exactly as `setsid python -m batchai_jupyter.node.agent <manifest> >>log` would be: its
own session, re-parented to init at once (a double fork), stdin from /dev/null, stdout and
stderr appended to the log. The agents do not depend on this process: it exits when its stdin
ends (the engine stopped or died) and what it started goes on. The cluster root on the command
line names whose agents these are (the node folders are below it).
"""
from __future__ import annotations

import json
import os
import sys
import traceback

from . import agent, container  # noqa: F401 -- imported once here, inherited by every fork


def start(manifest: str, log: str) -> int:
    """Fork one detached agent for the manifest; the pid of the intermediate child (reaped)."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return pid
    code = 1
    try:
        if os.fork():
            os._exit(0)
        os.setsid()  # the agent leads a session of its own, as under `setsid`
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(null)
        os.close(out)
        code = agent.main(["agent", manifest])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 -- what a fresh interpreter would print, in the agent's log
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


def serve(requests: list[str] | None = None) -> int:
    """Start an agent per request line until stdin ends; a bad line is reported and skipped."""
    lines = sys.stdin if requests is None else requests
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            request = json.loads(line)
            start(str(request["manifest"]), str(request["log"]))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            print(f"zygote: cannot start an agent for {line[:200]!r}: {exc}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve())

"""The host side of one job process in a container: `podman exec` with the agent's signals.

    python container_exec.py <pid file> <runtime exec argv...>

`podman exec` and `docker exec` do not pass signals on, so cancel, the wall clock and a failed
peer would stop only the client. This helper is what the agent starts (in its own session, as it
starts bare processes): it runs the exec in a session of its own, forwards TERM, INT, HUP, QUIT
and USR1/2 to the process group of the job process (its host pid is in the pid file, written by
the in-container wrapper), and exits with the job's code, or dies of the signal that ended the
job (the wrapper's "<pid file>.status" says which), so the agent records the same exit code as
for a bare process. Standard library only, run by path: it needs nothing from the job's
PYTHONPATH.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
PID_WAIT_SECONDS = 5.0


def read_pid(path: str, wait: float) -> int | None:
    """The job process's host pid, waiting up to `wait` seconds for the wrapper to write it."""
    end = time.time() + wait
    while True:
        try:
            with open(path) as fh:
                text = fh.read().strip()
            if text:
                return int(text)
        except (OSError, ValueError):
            pass
        if time.time() >= end:
            return None
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    pid_file, command = argv[1], argv[2:]
    forwarded: list[int] = []
    client = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        forwarded.append(signum)
        pid = read_pid(pid_file, PID_WAIT_SECONDS if client.poll() is None else 0)
        if pid is None:
            return
        try:
            os.killpg(pid, signum)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    while True:
        try:
            code = client.wait()
            break
        except InterruptedError:  # pragma: no cover -- PEP 475 retries; kept for clarity
            continue
    status = _read_status(pid_file + ".status")
    for path in (pid_file, pid_file + ".status"):
        try:
            os.unlink(path)
        except OSError:
            pass
    # the runtime reports a signal death as 128+N: die of it as a bare process would have,
    # told by the in-container waiter, else when it was our own forwarded signal
    death = -status if status is not None and status < 0 else \
        code - 128 if status is None and code > 128 and (code - 128) in forwarded else 0
    if death:
        signal.signal(death, signal.SIG_DFL)
        os.kill(os.getpid(), death)
        time.sleep(1)
    return code


def _read_status(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv))

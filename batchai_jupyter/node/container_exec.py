"""The host side of one job process in a container, with the agent's signals.

    python container_exec.py <pid file> <runtime exec argv...>
    python -I -S container_exec.py --fifo <fifo> --cwd <folder> --stdout <file> --stderr <file>
           [--user uid:gid] [--env NAME]... <pid file> -- <argv...>

The second form asks the container's first process to start the job (container_starter.py):
a request file (0600; the variables named by --env, with their values from this helper's
environment, so no value is in any argv) and its name on the FIFO; the job appends to the
stdout and stderr files the agent opened for this helper (the run folder has the same path in
the container; a container cannot reopen a host process's files through /proc). It then waits
for the in-container waiter to end (a pidfd) and reads the job's status, as the first form
reads the exec's.

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

import json
import os
import select
import signal
import sys
import time

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
PID_WAIT_SECONDS = 5.0
START_WAIT_SECONDS = 60.0


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
    if len(argv) > 1 and argv[1] == "--fifo":
        return launch(argv[2:])
    import subprocess
    pid_file, command = argv[1], argv[2:]
    forwarded: list[int] = []
    client = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)

    def forward(signum: int, _frame: object) -> None:
        forwarded.append(signum)
        pid = read_pid(pid_file, PID_WAIT_SECONDS if client.poll() is None else 0)
        if pid is not None:
            _signal(pid, signum)

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
    return _end_as(death, code)


def _end_as(death: int, code: int) -> int:
    """Die of the job's signal (as a bare process would have), else return its exit code."""
    if death:
        signal.signal(death, signal.SIG_DFL)
        os.kill(os.getpid(), death)
        time.sleep(1)
    return code


def launch(args: list[str]) -> int:
    """The FIFO form (module docstring): ask, wait for the waiter, end as the job ended."""
    fifo, options, names, pid_file, command = _parse(args)
    user = options.get("user")
    request = {"argv": command, "cwd": options["cwd"], "pid_file": pid_file,
               "env": {n: os.environ[n] for n in names if n in os.environ},
               "stdout": options["stdout"], "stderr": options["stderr"],
               "user": [int(x) for x in user.split(":")] if user else None}
    forwarded: list[int] = []
    job: dict[str, list[int]] = {"pid": [], "pending": []}

    def forward(signum: int, _frame: object) -> None:
        forwarded.append(signum)
        if job["pid"]:
            _signal(job["pid"][0], signum)
        else:  # delivered once the job has a pid
            job["pending"].append(signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    path = pid_file + ".req"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(request, fh)
    if not _ask(fifo, path):
        os.unlink(path)
        sys.stderr.write(f"the container's launcher did not take {command[0]!r} within "
                         f"{START_WAIT_SECONDS:.0f} s (is the container still running?)\n")
        return 127
    waiter = read_pid(pid_file + ".waiter", START_WAIT_SECONDS)
    if waiter is None:
        sys.stderr.write(f"the container did not start {command[0]!r} within {START_WAIT_SECONDS:.0f} s\n")
        return 127
    pid = read_pid(pid_file, PID_WAIT_SECONDS)
    if pid is not None:
        job["pid"] = [pid]
        pending, job["pending"] = job["pending"], []
        for signum in pending:
            _signal(pid, signum)
    _wait_gone(waiter)
    status = _read_status(pid_file + ".status")
    for name in (pid_file, pid_file + ".status", pid_file + ".waiter"):
        try:
            os.unlink(name)
        except OSError:
            pass
    if status is None:  # the waiter was killed with its container (remove, the watchdog)
        return _end_as(forwarded[-1] if forwarded else signal.SIGKILL, 128 + signal.SIGKILL)
    return _end_as(-status if status < 0 else 0, status if status >= 0 else 128 - status)


def _parse(args: list[str]) -> tuple[str, dict[str, str], list[str], str, list[str]]:
    """fifo, the options (cwd, user), the --env names, the pid file and the job's argv."""
    fifo, options, names, rest = args[0], {}, [], args[1:]
    while rest and rest[0].startswith("--") and rest[0] != "--":
        key, value, rest = rest[0][2:], rest[1], rest[2:]
        if key == "env":
            names.append(value)
        else:
            options[key] = value
    if len(rest) < 3 or rest[1] != "--" or not {"cwd", "stdout", "stderr"} <= set(options):
        raise SystemExit("usage: container_exec.py --fifo FIFO --cwd DIR --stdout FILE --stderr FILE "
                         "[--user U:G] [--env NAME]... PID_FILE -- ARGV...")
    return fifo, options, names, rest[0], rest[2:]


def _ask(fifo: str, request: str) -> bool:
    """Name the request on the FIFO; False if no reader opened it in time."""
    end = time.time() + START_WAIT_SECONDS
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:  # ENXIO: no reader yet
            if time.time() >= end:
                return False
            time.sleep(0.01)
    try:
        os.write(fd, (request + "\n").encode())  # shorter than PIPE_BUF: one atomic write
    finally:
        os.close(fd)
    return True


def _wait_gone(pid: int) -> None:
    """Until the process has ended: a pidfd where the kernel has them, else /proc."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not poller.poll():
                pass
        finally:
            os.close(fd)
        return
    while True:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
                    return
        except (OSError, IndexError):
            return
        time.sleep(0.02)


def _signal(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _read_status(path: str) -> int | None:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv))

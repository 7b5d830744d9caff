"""`batchai schedule ...` and `batchai engine install-service`: the CLI's schedule commands.

Registered from cli.py (`add_parsers`, `run`); thin over ws.create_schedule / ws.schedule(name).
A job comes from a Batch AI job.json (-f, as `batchai job create`) or from --command/--script
over --source.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from .schedules.options import CATCHUPS, CODE_MODES, OVERLAPS
from .schedules.rows import FIRE_COLUMNS, SCHEDULE_COLUMNS, fire_rows, schedule_rows
from .view.table import Table, kv_text
from .workspace import Workspace

ACTIONS = ("create", "list", "show", "preview", "pause", "resume", "trigger", "fires", "delete")


def add_parsers(groups: Any, common: argparse.ArgumentParser, engine: Any) -> None:
    """The `schedule` group, and `engine install-service`."""
    sched = groups.add_parser("schedule", help="runs on a timetable").add_subparsers(dest="action", required=True)
    p = sched.add_parser("create", parents=[common], help="a schedule of a job")
    p.add_argument("name")
    p.add_argument("--cluster", "-c", default="local")
    p.add_argument("--experiment", "-e", help="default: the schedule's name")
    job = p.add_mutually_exclusive_group(required=True)
    job.add_argument("--file", "-f", help="a Batch AI job.json")
    job.add_argument("--command", help="a command line, run in --source")
    job.add_argument("--script", help="a Python script inside --source")
    p.add_argument("--source", help="folder snapshotted with the job (default: the job.json's, else .)")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="five-field cron line, e.g. '5 * * * *'")
    when.add_argument("--every", type=float, metavar="SECONDS", help="fire every SECONDS")
    p.add_argument("--tz", default="UTC", help="IANA time zone of --cron")
    p.add_argument("--start-at", help="ISO 8601 time of the first slot (inclusive)")
    p.add_argument("--end-at", help="ISO 8601 time after which nothing fires")
    p.add_argument("--overlap", default="skip", help="|".join(OVERLAPS))
    p.add_argument("--catchup", default="latest", help="|".join(CATCHUPS))
    p.add_argument("--code", default="snapshot", help="|".join(CODE_MODES))
    p.add_argument("--run-on-create", action="store_true")
    p.add_argument("--tag", action="append", metavar="K=V")
    sched.add_parser("list", parents=[common])
    for name in ACTIONS[2:]:
        p = sched.add_parser(name, parents=[common])
        p.add_argument("name")
        if name == "preview":
            p.add_argument("-n", type=int, default=5, help="how many fire times")
        if name == "fires":
            p.add_argument("--limit", type=int, default=50)
    p = engine.add_parser("install-service", parents=[common],
                          help="write a systemd unit that keeps this workspace's engine up (schedules survive reboots)")
    p.add_argument("--user", action="store_true", help="a user unit (~/.config/systemd/user) instead of a system one")
    p.add_argument("--unit-dir", help="write the unit here instead")


def handles(args: argparse.Namespace) -> bool:
    return args.group == "schedule" or (args.group == "engine" and args.action == "install-service")


def run(args: argparse.Namespace, ws: Workspace) -> int:
    if args.group == "engine":
        return install_service(args, ws)
    if args.action == "create":
        return _create(args, ws)
    if args.action == "list":
        rows = schedule_rows(ws.schedules())
        print(json.dumps(rows, indent=2) if args.output == "json" else Table(rows, SCHEDULE_COLUMNS).to_text())
        return 0
    sched = ws.schedule(args.name)
    if args.action == "show":
        _print(args, sched.details())
    elif args.action == "preview":
        times = [t.isoformat() for t in sched.preview(args.n)]
        print(json.dumps(times) if args.output == "json" else "\n".join(times))
    elif args.action == "fires":
        rows = fire_rows(sched.fires(args.limit))
        print(json.dumps(rows, indent=2) if args.output == "json" else Table(rows, FIRE_COLUMNS).to_text())
    elif args.action == "trigger":
        started = sched.trigger()
        _print(args, {"schedule": sched.name, "run": started.id, "status": started.status})
    else:
        getattr(sched, args.action)()
        print(f"schedule {sched.name}: {args.action} done")
    return 0


def _print(args: argparse.Namespace, record: dict[str, Any]) -> None:
    print(json.dumps(record, indent=2, default=str) if args.output == "json" else kv_text(record))


def _create(args: argparse.Namespace, ws: Workspace) -> int:
    from .errors import SpecError
    from .spec import JobSpec
    if args.file:
        spec = JobSpec.from_batchai_json(args.file, workspace=ws, source_directory=args.source)
    elif args.command:
        spec = JobSpec(source_directory=args.source or ".", command=args.command)
    else:
        spec = JobSpec(source_directory=args.source or ".", script=args.script)
    tags: dict[str, str] = {}
    for pair in args.tag or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError("tag", f"{pair!r} is not K=V", "e.g. --tag team=vision")
        tags[key] = value
    sched = ws.create_schedule(args.name, spec, cluster=args.cluster, experiment=args.experiment, cron=args.cron,
                               tz=args.tz, every=args.every, start_at=args.start_at, end_at=args.end_at,
                               overlap=args.overlap, catchup=args.catchup, run_on_create=args.run_on_create,
                               code=args.code, tags=tags)
    _print(args, sched.details())
    return 0


# -- systemd ----------------------------------------------------------------------------------------
def unit_name(ws_path: Path) -> str:
    """One unit per workspace: batchai-engine-<8 hex of its path>.service."""
    return f"batchai-engine-{hashlib.sha256(str(ws_path).encode()).hexdigest()[:8]}.service"


def unit_text(ws_path: Path, python: str, user: bool) -> str:
    """A unit that runs the workspace's engine for good and restarts it when it stops.

    KillMode=process: stopping the unit stops the engine only; jobs go on in their own sessions
    and the next engine picks them up. Restart=always: an engine that found the lock held (one
    started on demand) exits, and the unit's takes over once that one has gone."""
    argv = [python, "-m", "batchai_jupyter.engine", "serve", "--workspace", str(ws_path), "--idle-exit", "-1"]
    exec_start = " ".join(_systemd_quote(a) for a in argv)
    return "\n".join([
        "[Unit]",
        f"Description=batchai-jupyter engine of the workspace {ws_path}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={exec_start}",
        f"WorkingDirectory={_systemd_quote(str(ws_path))}",
        "Environment=PYTHONUNBUFFERED=1",
        "Restart=always",
        "RestartSec=10",
        "KillMode=process",
        "",
        "[Install]",
        f"WantedBy={'default.target' if user else 'multi-user.target'}",
        "",
    ])


def _systemd_quote(word: str) -> str:
    if word and not any(c in word for c in " \t\"'\\;$%"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$") + '"'


def install_service(args: argparse.Namespace, ws: Workspace) -> int:
    """Write the unit file and say how to enable it (nothing is enabled or started here)."""
    if args.unit_dir:
        folder = Path(args.unit_dir).expanduser()
    elif args.user:
        folder = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"
    else:
        folder = Path("/etc/systemd/system")
    folder.mkdir(parents=True, exist_ok=True)
    name = unit_name(ws.path)
    path = folder / name
    path.write_text(unit_text(ws.path, sys.executable, args.user))
    ctl = "systemctl --user" if args.user else "systemctl"
    print(f"wrote {path}")
    print("enable it (starts now and at every boot):")
    print(f"  {ctl} daemon-reload && {ctl} enable --now {shlex.quote(name)}")
    if args.user:
        print(f"  loginctl enable-linger {shlex.quote(os.environ.get('USER') or 'USER')}   # run without a login")
    return 0

"""%%batchai_schedule and %batchai_schedule: schedules from a notebook, thin over ws.create_schedule.

The cell form takes every option of %%batchai_job (the same parser, as a parent) plus the
schedule's own; the cell body is the job's script, as for %%batchai_job. The line form lists
schedules and acts on one by name. Bad options are UsageErrors naming what is valid.
"""
from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser, arg_split

from ..errors import BatchAIError
from ..schedules.options import CATCHUPS, CODE_MODES, OVERLAPS
from ..schedules.rows import FIRE_COLUMNS, SCHEDULE_COLUMNS, fire_rows, schedule_rows
from ..view.table import Table
from .args import int_at_least
from .magics import BatchAIMagics, option_names, split_script_arguments
from .submit import build_spec

ACTIONS = ("list", "show", "preview", "pause", "resume", "trigger", "fires", "delete")


def schedule_parser() -> MagicArgumentParser:
    """The cell form's options: those of %%batchai_job, then the schedule's."""
    job = BatchAIMagics.batchai_job.parser  # set by @magic_arguments
    parser = MagicArgumentParser(prog="%%batchai_schedule", add_help=False, parents=[job])
    parser.add_argument("--cron", help="five-field cron line, e.g. '5 * * * *' (or --every)")
    parser.add_argument("--every", type=int_at_least(1), metavar="SECONDS", help="fire every SECONDS instead")
    parser.add_argument("--tz", default="UTC", help="IANA time zone of --cron (default UTC)")
    parser.add_argument("--overlap", default="skip", help=f"a slot while the last run is active: {'|'.join(OVERLAPS)}")
    parser.add_argument("--catchup", default="latest", help=f"slots missed while no engine ran: {'|'.join(CATCHUPS)}")
    parser.add_argument("--code", default="snapshot", help=f"{'|'.join(CODE_MODES)}: snapshot now, or at each fire")
    parser.add_argument("--run-on-create", action="store_true", help="also start one run now")
    return parser


@magics_class
class ScheduleMagics(Magics):
    """%%batchai_schedule / %batchai_schedule (docs/schedules.md)."""

    def workspace(self) -> Any:
        from ..workspace import Workspace
        return Workspace.from_config()

    @line_cell_magic
    def batchai_schedule(self, line: str, cell: str | None = None) -> Any:
        """Run the cell as a job on a timetable, or manage schedules.

        Cell form::

            %%batchai_schedule NAME --cron "5 * * * *" [--tz Europe/Berlin] [--overlap skip|queue|
                cancel_previous|allow] [--catchup none|latest|all] [--code snapshot|live]
                [--every SECONDS] [--run-on-create] [every option of %%batchai_job] [-- ARGS]
            <the job's script>

        Line form::

            %batchai_schedule list
            %batchai_schedule show|preview|pause|resume|trigger|fires|delete NAME

        Examples::

            %%batchai_schedule hourly-scoring --cron "5 * * * *" --tz Europe/Berlin --cluster cpu
            import os; print("scoring for", os.environ["BATCHAI_SCHEDULED_TIME"])

            %batchai_schedule fires hourly-scoring
        """
        words = arg_split(line, posix=True)
        if not words:
            raise UsageError(f"%batchai_schedule needs an action ({', '.join(ACTIONS)}) or, as a cell "
                             "magic, a schedule name and --cron")
        try:
            if cell is None:
                return self._act(words)
            return self._create(words, cell)
        except BatchAIError as exc:
            raise UsageError(f"%batchai_schedule: {exc}") from None

    def _act(self, words: list[str]) -> Any:
        action, rest = words[0], words[1:]
        if action not in ACTIONS:
            raise UsageError(f"%batchai_schedule: unknown action {action!r} (valid: {', '.join(ACTIONS)}; "
                             f"%%batchai_schedule NAME --cron ... as a cell magic creates one)")
        ws = self.workspace()
        if action == "list":
            return Table(schedule_rows(ws.schedules()), SCHEDULE_COLUMNS)
        if len(rest) != 1:
            raise UsageError(f"%batchai_schedule {action} NAME: give one schedule name")
        sched = ws.schedule(rest[0])
        if action == "show":
            return sched.details()
        if action == "preview":
            return [t.isoformat() for t in sched.preview(5)]
        if action == "fires":
            return Table(fire_rows(sched.fires(50)), FIRE_COLUMNS)
        if action == "trigger":
            return sched.trigger()
        getattr(sched, action)()
        print(f"schedule {sched.name}: {action} done")
        return None

    def _create(self, words: list[str], cell: str) -> Any:
        name, options = words[0], words[1:]
        if name.startswith("-"):
            raise UsageError("%%batchai_schedule NAME [options]: the schedule's name comes first")
        parser = schedule_parser()
        opts, script_args = split_script_arguments(options)
        try:
            args = parser.parse_args(opts)
        except UsageError as exc:
            raise UsageError(f"%%batchai_schedule: {exc}\nvalid options: {', '.join(option_names(parser))}") from None
        if args.arguments:
            raise UsageError(f"%%batchai_schedule: {args.arguments[0]!r} is not an option; arguments of the "
                             "script go after --")
        args.arguments = script_args
        ws = self.workspace()
        spec, extra, tags = build_spec(ws, args, cell)
        explicit_experiment = any(w in ("--experiment", "-e") or w.startswith("--experiment=") for w in opts)
        return ws.create_schedule(name, spec, cluster=args.cluster,
                                  experiment=args.experiment if explicit_experiment else None,
                                  cron=args.cron, tz=args.tz, every=args.every, overlap=args.overlap,
                                  catchup=args.catchup, code=args.code, run_on_create=args.run_on_create,
                                  tags=tags, extra_files=extra)


def register_schedules(ip: Any) -> None:
    """The schedule magics and their tab completion (called by `%load_ext batchai_jupyter`)."""
    from .completion import register_schedule_completion
    ip.register_magics(ScheduleMagics)
    options = option_names(schedule_parser())
    register_schedule_completion(ip, options, list(ACTIONS))

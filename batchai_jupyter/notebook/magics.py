"""%batchai_cluster, %%batchai_job and %batchai_job: thin parsers over the Python API.

Every option is declared with IPython's magic_arguments, so `%%batchai_job?` documents it.
Bad arguments raise UsageError naming what is valid, before anything is snapshotted or
submitted. The workspace is looked up on every call (Workspace.from_config): no kernel state.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import (
    MagicArgumentParser,
    arg_split,
    argument,
    magic_arguments,
)

from ..errors import RunNotFound
from ..spec import DISTRIBUTIONS as _SPEC_DISTRIBUTIONS
from ..spec import IMAGE_PULL_POLICIES
from ..view.rows import FILE_COLUMNS, MAGIC_RUN_COLUMNS, file_rows, runs_table_rows
from ..view.table import Table
from .args import int_at_least, refuse, refuse_parse_error
from .cluster_magics import cluster_command

DISTRIBUTIONS = tuple(d for d in _SPEC_DISTRIBUTIONS if d is not None)
JOB_ACTIONS = ("list", "show", "stream", "cancel", "files")


def option_names(parser: Any) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings if s.startswith("--")]


def split_script_arguments(words: list[str]) -> tuple[list[str], list[str]]:
    """(options, script arguments): the script's arguments are what follows the first `--`."""
    if "--" in words:
        cut = words.index("--")
        return words[:cut], words[cut + 1:]
    return words, []


def parse_or_explain(func: Callable[..., Any], line: str) -> Any:
    """Shell-like splitting (quotes removed), with the valid options added to an error; a word
    before `--` that belongs to no option is refused (it is not passed to the script)."""
    parser = cast(Any, func).parser  # set by @magic_arguments
    options, script_args = split_script_arguments(arg_split(line, posix=True))
    try:
        args = parser.parse_args(options)
    except UsageError as exc:
        refuse_parse_error(f"%%{func.__name__}", exc, option_names(parser))
    stray = getattr(args, "arguments", None)
    if stray:
        refuse("ARGS", f"{stray[0]!r} is not an option", text=(
            f"%%{func.__name__}: {stray[0]!r} is not an option; arguments of the script go after -- "
            f"(for example: %%{func.__name__} [options] -- {' '.join(stray)})"))
    if hasattr(args, "arguments"):
        args.arguments = script_args
    return args


def job_line_parser() -> MagicArgumentParser:
    parser = MagicArgumentParser(prog="%batchai_job", add_help=False)
    sub = parser.add_subparsers(dest="action", metavar="{" + ",".join(JOB_ACTIONS) + "}")
    p = sub.add_parser("list", add_help=False)
    p.add_argument("--experiment", "-e")
    p.add_argument("--limit", type=int_at_least(1), default=20)
    for name in ("show", "cancel", "files"):
        sub.add_parser(name, add_help=False).add_argument("run")
    p = sub.add_parser("stream", add_help=False)
    p.add_argument("run")
    p.add_argument("-f", "--file", help="a run file (default: the main process's stdout)")
    p.add_argument("--no-follow", action="store_true", help="print what is there and return")
    return parser


@magics_class
class BatchAIMagics(Magics):
    """The magics `%load_ext batchai_jupyter` registers (docs/reference/magics.md)."""

    def workspace(self) -> Any:
        from ..workspace import Workspace
        return Workspace.from_config()

    # -- %batchai_cluster --------------------------------------------------------------------------
    @line_magic
    def batchai_cluster(self, line: str) -> Any:
        """Manage compute targets of the workspace.

        %batchai_cluster list
        %batchai_cluster show NAME
        %batchai_cluster create NAME --backend local|ssh|slurm --max-nodes N [--min-nodes N]
                         [--idle-seconds S] [--gpus-per-node N] [--hosts H1,H2] [--user U]
                         [--key-file F] [--known-hosts F] [--python P] [--node-root D]
                         [--partition P] [--login-host H] [--shared-root D]
        %batchai_cluster resize NAME N [--node-deallocation-option requeue|terminate|waitforjobcompletion]
        %batchai_cluster update NAME [--min-nodes N] [--max-nodes N] [--idle-seconds S]
        %batchai_cluster delete NAME [--force]
        """
        return cluster_command(self.workspace, line)

    # -- %%batchai_job and %batchai_job ----------------------------------------------------------
    @magic_arguments()
    @argument("--cluster", "-c", default="local", help="compute target (default: local)")
    @argument("--experiment", "-e", default="default", help="experiment the run is filed under")
    @argument("--nodes", type=int_at_least(1), default=1, help="nodes to run on (default 1)")
    @argument("--processes-per-node", type=int_at_least(1), default=1,
              help="processes started on each node (default 1)")
    @argument("--distribution", choices=DISTRIBUTIONS,
              help="launch contract for several processes: pytorch, mpi or tensorflow")
    @argument("--source", default=".", help="folder snapshotted with the job (default: the "
              "current folder); .amlignore/.gitignore apply")
    @argument("--script", default="main.py", help="name of the cell body in the snapshot "
              "(default main.py)")
    @argument("--command", help="command line to run instead of `python SCRIPT ARGS`; the "
              "cell body may then be empty")
    @argument("--input", action="append", metavar="ID=DATASTORE:PATH[:mount|download]",
              help="data the job reads, at $AZ_BATCHAI_INPUT_<ID> (default mode: download)")
    @argument("--output", action="append", metavar="ID=DATASTORE:PATH",
              help="folder $AZ_BATCHAI_OUTPUT_<ID> uploaded to the datastore when the job ends")
    @argument("--env", action="append", metavar="K=V", help="environment variable of the job")
    @argument("--gpus-per-process", type=int_at_least(0), default=0, help="GPUs per process")
    @argument("--image", help="OCI image the job runs in, one container per node "
              "(e.g. docker.io/library/python:3.11); default: the cluster's image, else none")
    @argument("--image-pull", choices=IMAGE_PULL_POLICIES, default="missing",
              help="when a node pulls the image: missing (default), always or never")
    @argument("--tag", action="append", metavar="K=V", help="tag of the run")
    @argument("--wait", action="store_true", help="stream the output and return when the run "
              "ends (raises RunFailed if it fails)")
    @argument("arguments", nargs="*", metavar="-- ARGS", help="arguments of the script")
    @line_cell_magic
    def batchai_job(self, line: str, cell: str | None = None) -> Any:
        """Run the cell as a job, or look at runs.

        Cell form: the cell body is the job's entry script; it is added to the snapshot of
        --source as --script (default main.py) and run with `python main.py ARGS` on --cluster.
        Returns the Run at once (its display is the live RunDetails widget) unless --wait.

        Line form: %batchai_job --command CMD [options] submits a job with no cell body.
        %batchai_job list [--experiment E] [--limit N]
        %batchai_job show RUN | stream RUN [-f FILE] | cancel RUN | files RUN

        Arguments of the script come after `--`; a word before it that is no option is an
        error. Options, cluster names, experiments, distributions and run ids tab-complete.

        Examples::

            %%batchai_job --cluster local --experiment mnist -- --epochs 3 --lr 0.1
            import sys; print("training with", sys.argv[1:])

            %%batchai_job --cluster gpu --nodes 2 --processes-per-node 2 --distribution pytorch
            import torch.distributed as dist; dist.init_process_group("gloo")

            %%batchai_job --input DATA=workspacestore:mnist:download --output MODEL=workspacestore:models
            import os; print(os.listdir(os.environ["AZ_BATCHAI_INPUT_DATA"]))

            %batchai_job --command "nvidia-smi" --cluster gpu --wait
            %batchai_job list --experiment mnist
            %batchai_job stream mnist_1700000000_ab12cd34 -f stderr.txt
        """
        from .submit import submit_cell
        if cell is None and not line.lstrip().startswith("-"):
            return self._job_line(line)
        args = parse_or_explain(self.batchai_job, line)  # options only on a line: a --command job
        return submit_cell(self.workspace(), args, cell or "")

    def _job_line(self, line: str) -> Any:
        if not line.strip():
            raise UsageError(f"%batchai_job needs an action: {', '.join(JOB_ACTIONS)} "
                             f"(or use %%batchai_job as a cell magic to run the cell as a job)")
        args = job_line_parser().parse_args(arg_split(line, posix=True))
        ws = self.workspace()
        if args.action == "list":
            runs = ws.runs(experiment=args.experiment, limit=args.limit)
            return Table(runs_table_rows(runs, MAGIC_RUN_COLUMNS), list(MAGIC_RUN_COLUMNS))
        run = find_run(ws, args.run)
        if args.action == "show":
            return run
        if args.action == "cancel":
            run.cancel()
            print(f"cancel requested for {run.id} (status {run.status})")
            return None
        if args.action == "files":
            return Table(file_rows(run.files_dir, run.get_file_names()), FILE_COLUMNS)
        try:  # stream
            for text in run.stream(args.file, follow=not args.no_follow):
                print(text, flush=True)
        except KeyboardInterrupt:
            print(f"\nStopped following {run.id}; the run goes on.", flush=True)
        return None


def find_run(ws: Any, run_id: str) -> Any:
    try:
        return ws.get_run(run_id)
    except RunNotFound:
        recent = [r.id for r in ws.runs(limit=5)]
        raise UsageError(f"run {run_id!r} not found in {ws.path} (recent runs: "
                         f"{', '.join(recent) or 'none'}; see %batchai_job list)") from None


def register(ip: Any) -> None:
    """Called by `%load_ext batchai_jupyter`."""
    ip.register_magics(BatchAIMagics)
    from .completion import register_completion
    register_completion(ip, option_names(cast(Any, BatchAIMagics.batchai_job).parser),
                        list(DISTRIBUTIONS))


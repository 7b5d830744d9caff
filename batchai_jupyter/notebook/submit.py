"""From parsed %%batchai_job options and a cell body to a submitted Run (submission.submit).

Every refusal is a UsageError whose __cause__ is a SpecError naming the option (args.refuse).
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from ..errors import ClusterNotFound, SpecError
from ..run import Run
from ..spec import JobSpec
from ..submission import submit
from .args import parse_data_options, parse_image, parse_pairs, refuse, refuse_api_error
from .progress import SnapshotProgress

if TYPE_CHECKING:
    from ..workspace import Workspace


def check_script_name(name: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or name.endswith("/"):
        refuse("--script", f"{name!r} must be a file name inside the snapshot",
               "a relative file name like main.py or jobs/train.py")
    return path.as_posix()


def build_spec(ws: Workspace, args: argparse.Namespace,
               cell: str) -> tuple[JobSpec, dict[str, bytes], dict[str, str]]:
    """Check every option (UsageError naming the fix) and build the JobSpec; submits nothing."""
    try:
        ws.cluster(args.cluster)
    except ClusterNotFound as exc:
        hint = f"{exc}; create one with %batchai_cluster create {args.cluster} --backend local --max-nodes 2"
        refuse("--cluster", hint, exc.known, text=f"--cluster: {hint}", cause=exc)
    env = parse_pairs(args.env, "--env")
    tags = parse_pairs(args.tag, "--tag", identifier=False)
    inputs = parse_data_options(args.input)
    outputs = parse_data_options(args.output, output=True)
    script = check_script_name(args.script)
    body = cell or ""
    if args.command is not None and not args.command.strip():
        refuse("--command", "is empty; give a command line or leave --command out")
    if not body.strip() and not args.command:
        refuse("cell", "is empty", "the job's script in the cell, or --command CMD",
               text="%%batchai_job: the cell is empty. Write the job's script in the cell, or give "
               "--command CMD to run a command (for example --command \"python train.py\")")
    source = Path(args.source).expanduser()
    if not source.is_dir():
        refuse("--source", f"{args.source!r} is not a folder", "the folder whose files the job "
               "needs, default: the current folder")
    refs_in = {item.id: item.reference(ws) for item in inputs}
    refs_out = {item.id: item.reference(ws) for item in outputs}
    if args.command:
        command = args.command + ("".join(" " + shlex.quote(a) for a in args.arguments))
        spec = JobSpec(source_directory=str(source), command=command)
    else:
        spec = JobSpec(source_directory=str(source), script=script, arguments=list(args.arguments))
    spec.node_count = args.nodes
    spec.process_count_per_node = args.processes_per_node
    spec.distribution = args.distribution
    spec.inputs, spec.outputs = refs_in, refs_out
    spec.environment_variables = env
    spec.gpus_per_process = args.gpus_per_process
    spec.image = parse_image(getattr(args, "image", None))
    spec.image_pull = getattr(args, "image_pull", None) or spec.image_pull
    extra = {script: body.encode()} if body.strip() else {}
    return spec, extra, tags


def submit_cell(ws: Workspace, args: argparse.Namespace, cell: str) -> Run:
    """Submit the cell as a job; returns the Run at once, or after it ends with --wait."""
    spec, extra, tags = build_spec(ws, args, cell)
    try:
        with SnapshotProgress(description=f"snapshot of {args.source}") as progress:
            run_id = submit(ws, args.experiment, spec, args.cluster, tags, extra_files=extra,
                            progress=progress)
    except SpecError as exc:
        refuse_api_error(exc)
    run = Run(ws, run_id)
    if args.wait:
        run.wait_for_completion(show_output=True, raise_on_error=True)
    return run

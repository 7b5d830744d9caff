"""`batchai`: the command line, mirroring `az batchai` (docs/reference/cli.md). Thin over the Python API.

Tables are view.table.Table over the view.rows builders the magics use too; submits go
through submission.submit like every other way a run starts.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from . import cli_schedule
from .cluster_config import (
    DEALLOCATION_OPTIONS,
    DEFAULT_BACKEND,
    DEFAULT_DEALLOCATION,
    DEFAULT_GPUS_PER_NODE,
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MIN_NODES,
)
from .errors import BatchAIError, SpecError
from .run import Run
from .run_stream import print_summary
from .view.rows import (
    CLI_RUN_COLUMNS,
    FILE_COLUMNS,
    NODE_COLUMNS,
    cluster_details,
    cluster_row,
    file_rows,
    node_row,
    runs_table_rows,
)
from .view.table import Table, kv_text
from .workspace import Workspace

#: Backend options `cluster create` takes (each --opt-name sets opt_name=).
BACKEND_OPTIONS = ("user", "key_file", "known_hosts", "python", "node_root", "partition",
                   "login_host", "shared_root")


def _ws(args: argparse.Namespace) -> Workspace:
    return Workspace.from_config(args.workspace) if args.workspace else Workspace.from_config()


def _emit(args: argparse.Namespace, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]],
          columns: Sequence[str] | None = None) -> None:
    """--output json: the data as JSON; table: a Table (or `key  value` lines for one record)."""
    if args.output == "json":
        print(json.dumps(rows, indent=2, default=str))
    elif isinstance(rows, Mapping):
        print(kv_text(rows))
    else:
        print(Table(rows, columns).to_text(empty=""))


# -- clusters --------------------------------------------------------------------------------------
def cluster_cmd(args: argparse.Namespace) -> int:
    ws = _ws(args)
    if args.action == "list":
        _emit(args, [cluster_row(c) for c in ws.clusters()])
    elif args.action == "show":
        _emit(args, cluster_details(ws.cluster(args.name)))
    elif args.action == "create":
        options: dict[str, Any] = {}
        if getattr(args, "file", None) or getattr(args, "afs_name", None) or getattr(args, "nfs", None) \
                or getattr(args, "container_name", None):
            from .importers.batchai.cluster import cli_cluster_options
            options.update(cli_cluster_options(ws, args))
        if args.hosts:
            options["hosts"] = args.hosts.split(",")
        for key in BACKEND_OPTIONS:
            if getattr(args, key, None):
                options[key] = getattr(args, key)
        # a cluster.json's scale settings, unless given on the command line (as az batchai did)
        sizes = {"min_nodes": options.pop("min_nodes", args.min_nodes),
                 "max_nodes": options.pop("max_nodes", args.max_nodes)}
        if args.max_nodes is not None:
            sizes["max_nodes"] = args.max_nodes
        if args.min_nodes != DEFAULT_MIN_NODES:
            sizes["min_nodes"] = args.min_nodes
        cluster = ws.create_cluster(args.name, backend=args.backend, gpus_per_node=args.gpus_per_node,
                                    idle_seconds_before_scaledown=args.idle_seconds, **sizes, **options)
        _emit(args, cluster_row(cluster))
    elif args.action == "resize":
        ws.cluster(args.name).resize(args.target, node_deallocation_option=args.node_deallocation_option)
        _emit(args, cluster_row(ws.cluster(args.name)))
    elif args.action == "auto-scale":
        ws.cluster(args.name).update(min_nodes=args.min, max_nodes=args.max)
        _emit(args, cluster_row(ws.cluster(args.name)))
    elif args.action == "delete":
        ws.cluster(args.name).delete(force=args.force)
        print(f"cluster {args.name} is being deleted")
    elif args.action == "node":
        _emit(args, [node_row(n) for n in ws.cluster(args.name).nodes()], NODE_COLUMNS)
    return 0


# -- jobs ------------------------------------------------------------------------------------------
def _run_row(run: Run) -> dict[str, Any]:
    return runs_table_rows([run], CLI_RUN_COLUMNS)[0]


def _key_values(items: Sequence[str], option: str) -> dict[str, str]:
    """K=V options; a value without '=' is a SpecError naming the option."""
    for item in items:
        if "=" not in item or not item.split("=", 1)[0]:
            raise SpecError(option, f"{item!r} is not K=V", "K=V")
    return dict(item.split("=", 1) for item in items)


def job_cmd(args: argparse.Namespace) -> int:
    from .spec import JobSpec
    from .submission import submit
    ws = _ws(args)
    if args.action == "create":
        from .importers.batchai.job import CLI_FLAGS, StorageAccount, spec_from_batchai_json
        storage = StorageAccount(args.storage_account_name, args.storage_account_key,
                                 args.storage_account_sas, names=CLI_FLAGS)
        spec = spec_from_batchai_json(JobSpec, args.file, args.source, ws, storage)
        if args.image:  # --image runs the job in that image (over the job.json's containerSettings)
            spec.image = args.image
        if args.image_pull:
            spec.image_pull = args.image_pull
        tags = _key_values(args.tag or [], "--tag")
        if args.name:
            tags["name"] = args.name
        run = Run(ws, submit(ws, args.experiment, spec, cluster=args.cluster, tags=tags))
        _emit(args, _run_row(run))
        return 0
    if args.action == "list":
        _emit(args, runs_table_rows(ws.runs(experiment=args.experiment, limit=args.limit or None),
                                    CLI_RUN_COLUMNS), list(CLI_RUN_COLUMNS))
        return 0
    run = ws.get_run(args.job)
    if args.action == "show":
        _emit(args, run.get_details() if args.output == "json" else _run_row(run))
    elif args.action == "terminate":
        run.cancel()
        print(f"cancel requested for {run.id}")
    elif args.action == "wait":
        details = run.wait_for_completion(show_output=args.stream, raise_on_error=False)
        if details["status"] != "Completed" and not args.stream:  # why: the failing process's last lines
            print_summary(run.id, details, sys.stderr)
        print(f"{run.id}: {details['status']}")
        return _exit_code(details)
    elif args.action == "delete":
        run.delete()
        print(f"deleted {run.id}")
    return 0


def _exit_code(details: dict[str, Any]) -> int:
    """`job wait` exits with the job's own exit code (1 if it failed without one)."""
    if details["status"] == "Completed":
        return 0
    error = details.get("error") or {}
    code = error.get("exit_code")
    if isinstance(code, int) and code > 0:
        return min(code, 255)
    return 1


def file_cmd(args: argparse.Namespace) -> int:
    ws = _ws(args)
    run = ws.get_run(args.job)
    if args.action == "list":
        _emit(args, file_rows(run.files_dir, run.get_file_names()), FILE_COLUMNS)
    else:
        for line in run.stream(args.file or run.main_log(), follow=not args.no_follow):
            print(line, flush=True)
    return 0


def datastore_cmd(args: argparse.Namespace) -> int:
    ws = _ws(args)
    if args.action in ("register", "show"):
        from .datastores.cli import datastore_register_or_show
        _emit(args, datastore_register_or_show(ws, args))
        return 0
    ds = ws.datastore(args.name) if args.name else ws.get_default_datastore()
    if args.action == "list":
        if args.name:
            for path in ds.list(args.prefix or ""):
                print(path)
        else:
            _emit(args, [{"name": d.name, "kind": d.kind} for d in ws.datastores()], ["name", "kind"])
    elif args.action == "upload":
        ds.upload(args.source, target_path=args.target, overwrite=args.overwrite, show_progress=True)
    elif args.action == "download":
        count = ds.download(args.target, prefix=args.prefix, overwrite=args.overwrite, show_progress=True)
        print(f"downloaded {count} file(s) to {args.target}")
    return 0


def workspace_cmd(args: argparse.Namespace) -> int:
    """`workspace prune`: a dry run unless --yes (the same as ws.prune's default)."""
    ws = _ws(args)
    result = ws.prune(older_than=args.older_than, keep_last=args.keep_last,
                      experiments=args.experiment or None, dry_run=not args.yes)
    if args.output == "json":
        print(json.dumps({"dry_run": result.dry_run, "runs": [vars(r) for r in result.runs],
                          "snapshots": result.snapshots, "objects": result.objects,
                          "bytes_freed": result.bytes_freed}, indent=2))
        return 0
    print(Table(result.rows(), ["what", "experiment", "status", "bytes"]).to_text(empty=""))
    verb = "would free" if result.dry_run else "freed"
    print(f"{verb} {result.bytes_freed} bytes ({len(result.runs)} run(s))"
          + (" -- run again with --yes to remove" if result.dry_run else ""))
    return 0


def engine_cmd(args: argparse.Namespace) -> int:
    from .engine import control as engine_control
    ws = _ws(args)
    if args.action == "serve":
        from .engine.loop import main as engine_main
        idle = ["--idle-exit", str(args.idle_exit)] if args.idle_exit is not None else ["--idle-exit", "-1"]
        return engine_main(["serve", "--workspace", str(ws.path), *idle])
    if args.action == "status":
        _emit(args, {"workspace": str(ws.path), **engine_control.engine_info(ws.path)})
    elif args.action == "stop":
        stopped = engine_control.stop_engine(ws.path)
        print("engine stopped" if stopped else "no engine was running")
    return 0


# -- parser ----------------------------------------------------------------------------------------
def _storage_flags(p: argparse.ArgumentParser) -> None:
    """az batchai's storage account flags: fill <AZURE_BATCHAI_STORAGE_ACCOUNT> and give volumes
    without credentials the account's key or SAS."""
    env = os.environ.get  # az batchai's defaults for the first two
    p.add_argument("--storage-account-name", default=env("AZURE_BATCHAI_STORAGE_ACCOUNT"),
                   help="replaces <AZURE_BATCHAI_STORAGE_ACCOUNT> (default: $AZURE_BATCHAI_STORAGE_ACCOUNT)")
    p.add_argument("--storage-account-key", default=env("AZURE_BATCHAI_STORAGE_KEY"),
                   help="the account's key, kept in the secrets file only (default: $AZURE_BATCHAI_STORAGE_KEY)")
    p.add_argument("--storage-account-sas", help="a SAS token instead of the key")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", "-w", help="workspace folder (default: BATCHAI_WORKSPACE, "
                        "nearest .batchai/, ~/.batchai)")
    common.add_argument("--output", "-o", choices=["table", "json"], default="table")
    parser = argparse.ArgumentParser(prog="batchai", description="Run jobs on local, SSH and Slurm clusters.")
    groups = parser.add_subparsers(dest="group", required=True)

    cluster = groups.add_parser("cluster", help="compute targets").add_subparsers(dest="action", required=True)
    cluster.add_parser("list", parents=[common])
    for name in ("show", "delete"):
        p = cluster.add_parser(name, parents=[common])
        p.add_argument("-n", "--name", required=True)
        if name == "delete":
            p.add_argument("--force", action="store_true")
    p = cluster.add_parser("create", parents=[common])
    p.add_argument("-n", "--name", required=True)
    from .cluster import backend_names
    p.add_argument("--backend", choices=backend_names(), default=DEFAULT_BACKEND)
    p.add_argument("--min-nodes", type=int, default=DEFAULT_MIN_NODES)
    p.add_argument("--max-nodes", type=int)
    p.add_argument("--gpus-per-node", type=int, default=DEFAULT_GPUS_PER_NODE)
    p.add_argument("--idle-seconds", type=int, default=DEFAULT_IDLE_SECONDS)
    p.add_argument("--hosts", help="ssh: comma-separated host[:port] list")
    p.add_argument("-f", "--file", help="Batch AI cluster.json: scale settings, mount volumes, setup task")
    p.add_argument("--afs-name", help="an Azure file share of the storage account, mounted on every node")
    p.add_argument("--afs-mount-path", default="afs", help="its folder below $AZ_BATCHAI_MOUNT_ROOT")
    p.add_argument("--container-name", help="a blob container of the storage account, mounted on every node")
    p.add_argument("--container-mount-path", default="bfs", help="its folder below $AZ_BATCHAI_MOUNT_ROOT")
    p.add_argument("--nfs", help="a local datastore (or a folder path) mounted on every node")
    p.add_argument("--nfs-mount-path", default="nfs", help="its folder below $AZ_BATCHAI_MOUNT_ROOT")
    p.add_argument("--setup-task", help="a command run once on every node before its first job")
    _storage_flags(p)
    for opt in BACKEND_OPTIONS:
        p.add_argument("--" + opt.replace("_", "-"))
    p = cluster.add_parser("resize", parents=[common])
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-t", "--target", type=int, required=True)
    p.add_argument("--node-deallocation-option", default=DEFAULT_DEALLOCATION,
                   choices=DEALLOCATION_OPTIONS)
    p = cluster.add_parser("auto-scale", parents=[common])
    p.add_argument("-n", "--name", required=True)
    p.add_argument("--min", type=int)
    p.add_argument("--max", type=int)
    p = cluster.add_parser("node", parents=[common])
    p.add_argument("node_action", choices=["list"])
    p.add_argument("-c", "--cluster", dest="name", required=True)

    job = groups.add_parser("job", help="runs").add_subparsers(dest="action", required=True)
    p = job.add_parser("create", parents=[common])
    p.add_argument("-c", "--cluster", default="local")
    p.add_argument("-f", "--file", required=True, help="Batch AI job.json (2018-05-01)")
    p.add_argument("-n", "--name")
    p.add_argument("-e", "--experiment", default="default")
    p.add_argument("--source", help="folder to snapshot (default: the job.json's folder)")
    p.add_argument("--tag", action="append", help="K=V")
    p.add_argument("--image", help="OCI image to run the job in (one container per node)")
    p.add_argument("--image-pull", choices=["missing", "always", "never"],
                   help="when a node pulls the image (default: missing)")
    _storage_flags(p)
    p = job.add_parser("list", parents=[common])
    p.add_argument("-e", "--experiment")
    p.add_argument("--limit", type=int, default=50)
    for name in ("show", "terminate", "wait", "delete"):
        p = job.add_parser(name, parents=[common])
        p.add_argument("-j", "--job", "-n", "--name", dest="job", required=True)
        if name == "wait":
            p.add_argument("--stream", action="store_true", help="print the main log while waiting")
    fileg = job.add_parser("file").add_subparsers(dest="file_action", required=True)
    p = fileg.add_parser("list", parents=[common])
    p.add_argument("-j", "--job", required=True)
    p = fileg.add_parser("stream", parents=[common])
    p.add_argument("-j", "--job", required=True)
    p.add_argument("-f", "--file")
    p.add_argument("--no-follow", action="store_true")

    store = groups.add_parser("datastore", help="data").add_subparsers(dest="action", required=True)
    p = store.add_parser("register", parents=[common])
    p.add_argument("-n", "--name", required=True)
    p.add_argument("--kind", required=True, choices=["local", "azure_blob", "azure_file"])
    p.add_argument("--path", help="local: the folder (an NFS mount, ...)")
    for opt, meaning in (("account-name", "the storage account"),
                         ("account-key", "its key (kept in the secrets file only; never printed)"),
                         ("sas", "a SAS token instead of the key"),
                         ("connection-string", "a connection string instead of the above"),
                         ("container", "azure_blob: the container"), ("share", "azure_file: the share"),
                         ("endpoint", "the service URL, when not https://<account>.<blob|file>.core.windows.net")):
        p.add_argument(f"--{opt}", help=meaning)
    p.add_argument("--create", action="store_true", help="create the container/share if it does not exist")
    p = store.add_parser("show", parents=[common])
    p.add_argument("-n", "--name", required=True)
    p = store.add_parser("list", parents=[common])
    p.add_argument("-n", "--name")
    p.add_argument("--prefix")
    p = store.add_parser("upload", parents=[common])
    p.add_argument("-n", "--name")
    p.add_argument("-s", "--source", required=True)
    p.add_argument("-t", "--target")
    p.add_argument("--overwrite", action="store_true")
    p = store.add_parser("download", parents=[common])
    p.add_argument("-n", "--name")
    p.add_argument("-t", "--target", required=True)
    p.add_argument("--prefix")
    p.add_argument("--overwrite", action="store_true")

    wsg = groups.add_parser("workspace", help="the workspace").add_subparsers(dest="action", required=True)
    p = wsg.add_parser("prune", parents=[common], help="free finished runs' files and unused snapshots")
    p.add_argument("--older-than", help="only runs that ended this long ago: seconds, 90m, 12h, 7d, 2w")
    p.add_argument("--keep-last", type=int, help="keep each experiment's newest N finished runs")
    p.add_argument("--experiment", action="append", help="only this experiment (repeatable)")
    p.add_argument("--yes", action="store_true", help="remove (without it: only show what would go)")

    engine = groups.add_parser("engine", help="the engine process").add_subparsers(dest="action", required=True)
    p = engine.add_parser("serve", parents=[common])
    p.add_argument("--idle-exit", type=float, help="exit after this many idle seconds (default: never)")
    engine.add_parser("status", parents=[common])
    engine.add_parser("stop", parents=[common])
    cli_schedule.add_parsers(groups, common, engine)  # `schedule ...`, `engine install-service`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for key in ("key_file", "known_hosts", "node_root", "login_host", "shared_root"):
        if not hasattr(args, key):
            setattr(args, key, None)
    try:
        if args.group == "cluster":
            return cluster_cmd(args)
        if args.group == "job":
            if args.action == "file":
                args.action = args.file_action
                return file_cmd(args)
            return job_cmd(args)
        if args.group == "datastore":
            return datastore_cmd(args)
        if args.group == "workspace":
            return workspace_cmd(args)
        if cli_schedule.handles(args):
            return cli_schedule.run(args, _ws(args))
        return engine_cmd(args)
    except BatchAIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

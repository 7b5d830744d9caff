"""%batchai_cluster: list, show, create, resize, update, delete (thin over Workspace/Cluster)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser, arg_split

from ..cluster import backend_names
from ..cluster_config import (
    DEALLOCATION_OPTIONS,
    DEFAULT_BACKEND,
    DEFAULT_DEALLOCATION,
    DEFAULT_GPUS_PER_NODE,
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MIN_NODES,
)
from ..errors import ClusterError, ClusterNotFound, SpecError
from ..view.rows import CLUSTER_COLUMNS, cluster_row
from ..view.table import Table
from .args import int_at_least

ACTIONS = ("list", "show", "create", "resize", "update", "delete")
#: Backend options the create action takes (each --opt-name sets opt_name=).
BACKEND_OPTIONS = ("user", "key_file", "known_hosts", "python", "node_root", "partition",
                   "login_host", "shared_root")
__all__ = ["ACTIONS", "CLUSTER_COLUMNS", "cluster_command", "cluster_row", "parser"]


def parser() -> MagicArgumentParser:
    root = MagicArgumentParser(prog="%batchai_cluster", add_help=False)
    sub = root.add_subparsers(dest="action", metavar="{" + ",".join(ACTIONS) + "}")
    sub.add_parser("list", add_help=False)
    for name in ("show", "delete"):
        p = sub.add_parser(name, add_help=False)
        p.add_argument("name")
        if name == "delete":
            p.add_argument("--force", action="store_true", help="delete even with active runs")
    p = sub.add_parser("create", add_help=False)
    p.add_argument("name")
    p.add_argument("--backend", choices=backend_names(), default=DEFAULT_BACKEND)
    p.add_argument("--min-nodes", type=int_at_least(0), default=DEFAULT_MIN_NODES)
    p.add_argument("--max-nodes", type=int_at_least(0))
    p.add_argument("--idle-seconds", type=int_at_least(0), default=DEFAULT_IDLE_SECONDS)
    p.add_argument("--gpus-per-node", type=int_at_least(0), default=DEFAULT_GPUS_PER_NODE)
    p.add_argument("--hosts", help="ssh: comma-separated host[:port] list")
    for opt in BACKEND_OPTIONS:
        p.add_argument("--" + opt.replace("_", "-"))
    p = sub.add_parser("resize", add_help=False)
    p.add_argument("name")
    p.add_argument("target", type=int_at_least(0))
    p.add_argument("--node-deallocation-option", choices=DEALLOCATION_OPTIONS,
                   default=DEFAULT_DEALLOCATION)
    p = sub.add_parser("update", add_help=False)
    p.add_argument("name")
    p.add_argument("--min-nodes", type=int_at_least(0))
    p.add_argument("--max-nodes", type=int_at_least(0))
    p.add_argument("--idle-seconds", type=int_at_least(0))
    return root


def cluster_command(workspace: Callable[[], Any], line: str) -> Any:
    if not line.strip():
        raise UsageError(f"%batchai_cluster needs an action: {', '.join(ACTIONS)}")
    args = parser().parse_args(arg_split(line, posix=True))
    ws = workspace()
    try:
        if args.action == "list":
            return Table([cluster_row(c) for c in ws.clusters()], CLUSTER_COLUMNS)
        if args.action == "create":
            options = {key: getattr(args, key) for key in BACKEND_OPTIONS
                       if getattr(args, key) is not None}
            if args.hosts:
                options["hosts"] = [h for h in args.hosts.split(",") if h]
            return ws.create_cluster(args.name, backend=args.backend, min_nodes=args.min_nodes,
                                     max_nodes=args.max_nodes,
                                     idle_seconds_before_scaledown=args.idle_seconds,
                                     gpus_per_node=args.gpus_per_node, **options)
        cluster = ws.cluster(args.name)
        if args.action == "show":
            row = cluster_row(cluster)
            config = {k: v for k, v in cluster.config.items() if k not in row}
            errors = cluster.get_status().errors
            items = [*row.items(), *config.items()] + ([("errors", "; ".join(errors))] if errors else [])
            nodes = [f"{n.id} {n.state}" + (f" ({n.error})" if n.error else "") for n in cluster.nodes()]
            items.append(("node list", ", ".join(nodes)))
            return Table([{"field": k, "value": v} for k, v in items], ["field", "value"])
        if args.action == "resize":
            cluster.resize(args.target, node_deallocation_option=args.node_deallocation_option)
        elif args.action == "update":
            if args.min_nodes is None and args.max_nodes is None and args.idle_seconds is None:
                raise UsageError("%batchai_cluster update needs one of --min-nodes, --max-nodes, "
                                 "--idle-seconds")
            cluster.update(min_nodes=args.min_nodes, max_nodes=args.max_nodes,
                           idle_seconds_before_scaledown=args.idle_seconds)
        elif args.action == "delete":
            cluster.delete(force=args.force)
            print(f"cluster {args.name} is being deleted")
            return None
        return cluster.refresh()
    except ClusterNotFound as exc:
        raise UsageError(f"%batchai_cluster {args.action}: {exc}") from None
    except (SpecError, ClusterError) as exc:
        raise UsageError(f"%batchai_cluster {args.action}: {exc}") from None

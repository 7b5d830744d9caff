"""Settings of a slurm cluster that can be checked without asking Slurm (typed errors)."""
from __future__ import annotations

from typing import Any

from ...errors import SpecError


def check_settings(config: dict[str, Any]) -> None:
    """SpecError naming the first bad setting and what is valid."""
    root = config.get("shared_root")
    if not isinstance(root, str) or not root.startswith("/") or any(c.isspace() for c in root):
        raise SpecError("shared_root", f"{root!r} is not an absolute folder path without spaces",
                        "an absolute folder that every node of the partition sees")
    if config.get("max_nodes", 0) < 1:
        raise SpecError("max_nodes", f"a slurm cluster needs max_nodes >= 1, got {config.get('max_nodes')}",
                        "1 or more")
    if config.get("min_nodes", 0) != 0:
        raise SpecError("min_nodes", f"{config['min_nodes']}: Slurm allocates nodes per run, "
                        "a slurm cluster holds no idle nodes", "0")
    partition = config.get("partition")
    if partition is not None and (not isinstance(partition, str) or not partition.strip()):
        raise SpecError("partition", f"{partition!r} is not a partition name", "a partition name or None")
    args = config.get("sbatch_args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) and a.startswith("-") for a in args):
        raise SpecError("sbatch_args", f"{args!r} is not a list of sbatch options",
                        'a list such as ["--account=proj", "--qos=normal"]')
    for key in ("poll_min_seconds", "poll_max_seconds", "never_starts_seconds"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value <= 0):
            raise SpecError(key, f"must be a number of seconds > 0, got {value!r}", "> 0")
    mca = config.get("mpi_mca")
    if mca is not None and (not isinstance(mca, dict) or not all(isinstance(k, str) for k in mca)):
        raise SpecError("mpi_mca", f"must be a dict of OpenMPI MCA names to values, got {mca!r}",
                        '{"btl_tcp_if_include": "eth0"}')
    login = config.get("login_host")
    if login is not None and (not isinstance(login, str) or not login.strip()):
        raise SpecError("login_host", f"{login!r} is not a host", "host, host:port or None")

"""Backends for the conformance suite: the same tests run on local, ssh and slurm clusters.

`backend_cluster` yields (workspace, cluster name) for each backend. ssh hosts are real sshd
processes in network namespaces made once per session (ssh_env.py); slurm comes from
slurm_env.make_slurm_cluster (real slurmctld + two slurmd). A backend whose components cannot
run here is skipped with the reason.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

import batchai_jupyter as bai
from tests.compute.ssh_env import SSHHosts, make_ssh_cluster, running_hosts

BACKENDS = ["local", "ssh", "slurm"]
# Another package's backend joins the suite: BATCHAI_CONFORMANCE_CLUSTER='{"backend": "mine", ...}'
# (the create_cluster arguments; docs/extending.md). Its tests are named [extra].
EXTRA_CLUSTER = os.environ.get("BATCHAI_CONFORMANCE_CLUSTER")
if EXTRA_CLUSTER:
    BACKENDS.append("extra")


@pytest.fixture(scope="session")
def ssh_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHHosts]:
    yield from running_hosts(tmp_path_factory.mktemp("sshhosts"), count=3)


@pytest.fixture(params=BACKENDS)
def backend_cluster(request: pytest.FixtureRequest, ws: bai.Workspace,
                    tmp_path_factory: pytest.TempPathFactory) -> tuple[bai.Workspace, str]:
    backend = request.param
    if backend == "local":
        return ws, "local"
    if backend == "ssh":
        return ws, make_ssh_cluster(ws, request.getfixturevalue("ssh_hosts"))
    if backend == "extra":
        settings = json.loads(EXTRA_CLUSTER or "{}")
        settings.setdefault("max_nodes", 2)
        return ws, ws.create_cluster("conformance", **settings).name
    try:
        from tests.compute.slurm_env import make_slurm_cluster
    except ImportError as exc:
        pytest.skip(reason=f"slurm test environment not importable: {exc}")
    return ws, make_slurm_cluster(ws, tmp_path_factory)

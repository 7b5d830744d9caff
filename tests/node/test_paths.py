"""RunPaths: one owner for a run's on-node layout, and the run key that names its folder."""
from __future__ import annotations

from batchai_jupyter.node.paths import MCA_FILE, RunPaths, mca_path, run_key


def test_run_key_names_attempts() -> None:
    assert run_key("exp_1_ab") == run_key("exp_1_ab", 0) == "exp_1_ab"
    assert run_key("exp_1_ab", 2) == "exp_1_ab.2"
    p = RunPaths.for_attempt("/n", "exp_1_ab", 2)
    assert p == RunPaths("/n", "exp_1_ab.2") and p.run_dir == "/n/runs/exp_1_ab.2"


def test_the_layout() -> None:
    p = RunPaths("/n", "r1")
    assert p.manifest == "/n/runs/r1/run.json"
    assert p.hostfile == "/n/runs/r1/hostfile"
    assert p.rank_env == "/n/runs/r1/mpi-rank.json"
    assert p.mca_file == mca_path("/n") == f"/n/{MCA_FILE}" == "/n/mpi-mca.json"
    assert p.mount_root == "/n/mounts" and p.mounts == "/n/runs/r1/mounts"
    assert RunPaths.of_run_dir(p.run_dir) == p


def test_shared_temp_is_keyed_by_run_id() -> None:
    p = RunPaths.for_attempt("/n", "r1", 1)
    assert p.shared_temp("/shared", "r1") == "/shared/jobs/r1/temp"
    assert p.shared_temp(None, "r1") == p.temp == "/n/runs/r1.1/temp"

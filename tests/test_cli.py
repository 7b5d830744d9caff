"""The `batchai` command line, run as a user would, against a real workspace and engine."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import batchai_jupyter as bai


def batchai(ws: bai.Workspace, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, BATCHAI_WORKSPACE=str(ws.path))
    proc = subprocess.run([sys.executable, "-m", "batchai_jupyter.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"batchai {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _job_json(folder: Path, code: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(f"import sys\nprint('training', sys.argv[1:])\nsys.exit({code})\n")
    job = {"properties": {"nodeCount": 1, "pyTorchSettings": {
        "pythonScriptFilePath": "train.py", "commandLineArgs": "--epochs 1"},
        "environmentVariables": [{"name": "MODE", "value": "cli"}]}}
    (folder / "job.json").write_text(json.dumps(job))
    return folder / "job.json"


def test_job_create_wait_and_files(ws: bai.Workspace, tmp_path: Path) -> None:
    created = json.loads(batchai(ws, "job", "create", "-c", "local", "-f", str(_job_json(tmp_path / "ok", 0)),
                                 "-e", "cli", "-o", "json").stdout)
    run_id = created["name"]
    wait = batchai(ws, "job", "wait", "-j", run_id, "--stream")
    assert "training ['--epochs', '1']" in wait.stdout and f"{run_id}: Completed" in wait.stdout
    files = json.loads(batchai(ws, "job", "file", "list", "-j", run_id, "-o", "json").stdout)
    assert "stdout.txt" in [f["name"] for f in files]
    streamed = batchai(ws, "job", "file", "stream", "-j", run_id, "-f", "stdout.txt")
    assert streamed.stdout.strip() == "training ['--epochs', '1']"
    listed = batchai(ws, "job", "list", "-e", "cli").stdout
    assert run_id in listed and "Completed" in listed
    shown = json.loads(batchai(ws, "job", "show", "-j", run_id, "-o", "json").stdout)
    assert shown["status"] == "Completed" and shown["runDefinition"]["distribution"] == "pytorch"
    table = batchai(ws, "job", "list", "-e", "cli").stdout.splitlines()
    assert table[0].split() == ["name", "experiment", "cluster", "status", "submitted", "duration"]
    assert f"deleted {run_id}" in batchai(ws, "job", "delete", "-j", run_id).stdout
    assert ws.runs(experiment="cli") == [] and not (ws.path / "runs" / run_id).exists()
    assert batchai(ws, "job", "show", "-j", run_id, check=False).returncode == 2


def test_job_wait_exits_with_the_jobs_exit_code(ws: bai.Workspace, tmp_path: Path) -> None:
    created = json.loads(batchai(ws, "job", "create", "-f", str(_job_json(tmp_path / "bad", 7)),
                                 "-o", "json").stdout)
    wait = batchai(ws, "job", "wait", "-j", created["name"], check=False)
    assert wait.returncode == 7 and "Failed" in wait.stdout


def test_cluster_commands_and_errors(ws: bai.Workspace) -> None:
    batchai(ws, "cluster", "create", "-n", "cpu4", "--max-nodes", "4", "--idle-seconds", "60")
    clusters = json.loads(batchai(ws, "cluster", "list", "-o", "json").stdout)
    assert {c["name"]: c["max_nodes"] for c in clusters} == {"local": 2, "cpu4": 4}
    batchai(ws, "cluster", "auto-scale", "-n", "cpu4", "--min", "0", "--max", "3")
    assert json.loads(batchai(ws, "cluster", "show", "-n", "cpu4", "-o", "json").stdout)["max_nodes"] == 3
    missing = batchai(ws, "cluster", "show", "-n", "nope", check=False)
    assert missing.returncode == 2 and "cluster 'nope' not found" in missing.stderr and "local" in missing.stderr
    bad = batchai(ws, "job", "create", "-f", "/does/not/exist.json", check=False)
    assert bad.returncode == 2 and "job.json" in bad.stderr
    batchai(ws, "cluster", "delete", "-n", "cpu4")


def test_engine_status_and_stop(ws: bai.Workspace) -> None:
    from batchai_jupyter.engine.control import ensure_engine
    ensure_engine(ws.path)
    from tests.support import wait_until
    assert wait_until(lambda: json.loads(batchai(ws, "engine", "status", "-o", "json").stdout)["running"], 15)
    assert "engine stopped" in batchai(ws, "engine", "stop").stdout
    assert json.loads(batchai(ws, "engine", "status", "-o", "json").stdout)["running"] is False

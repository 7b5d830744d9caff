"""Secret values show nowhere and outlive no run: repr, a Queued cancel, a failed submit."""
from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.engine.control import engine_info, forget
from tests.support import process_gone, wait_until

VALUE = "s3cr3t-Value-9f1c"


def _secrets_text(ws: bai.Workspace) -> str:
    return ws.secrets.path.read_text()


def test_repr_and_str_of_a_spec_mask_secret_values(tmp_path: Path) -> None:
    spec = JobSpec(source_directory=tmp_path, command="true", secrets={"API_KEY": VALUE},
                   environment_variables={"SEED": "1"})
    for text in (repr(spec), str(spec), f"{spec}", repr([spec])):
        assert VALUE not in text
        assert "secrets={'API_KEY': '***'}" in text
        assert "environment_variables={'SEED': '1'}" in text
    assert spec.secrets == {"API_KEY": VALUE}  # only the display is masked


def test_a_run_canceled_while_queued_leaves_no_secret(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    gate = tmp_path / "gate"
    (src / "wait.py").write_text(textwrap.dedent(f"""
        import os, time
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.05)
    """))
    ws.create_cluster("one", backend="local", max_nodes=1)
    blocker = ws.experiment("s").submit(JobSpec(source_directory=src, script="wait.py"), cluster="one")
    queued = ws.experiment("s").submit(JobSpec(source_directory=src, script="wait.py",
                                               secrets={"API_KEY": VALUE}), cluster="one")
    assert wait_until(lambda: blocker.status == "Running", 60)
    assert queued.status == "Queued" and VALUE in _secrets_text(ws)
    queued.cancel()
    assert wait_until(lambda: queued.status == "Canceled", 30)
    assert VALUE not in _secrets_text(ws)
    assert VALUE not in ws.secrets.values()
    gate.write_text("go")
    assert blocker.wait_for_completion(timeout=60)["status"] == "Completed"


def test_a_submit_that_fails_after_the_secrets_step_leaves_no_secret(ws: bai.Workspace, src: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def locked(*_args: object, **_kwargs: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(ws.history, "insert_runs", locked)  # the insert after the secrets step fails
    with pytest.raises(sqlite3.OperationalError):
        ws.experiment("s").submit(JobSpec(source_directory=src, script="train.py", secrets={"API_KEY": VALUE}))
    assert VALUE not in _secrets_text(ws)
    assert ws.secrets.values() == []


def test_a_finished_run_leaves_no_secret(ws: bai.Workspace, src: Path) -> None:
    run = ws.experiment("s").submit(JobSpec(source_directory=src, script="train.py", arguments=["1"],
                                            secrets={"API_KEY": VALUE}))
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    assert wait_until(lambda: VALUE not in _secrets_text(ws), 10)


def test_a_failed_run_leaves_no_secret_in_its_node_files(ws: bai.Workspace, tmp_path: Path) -> None:
    """A failed run's node folder is kept for a look (keep_failed_runs): its secret is not in it."""
    src = tmp_path / "src"
    src.mkdir()
    digest = hashlib.sha256(VALUE.encode()).hexdigest()
    (src / "fail.py").write_text("import hashlib, os, sys\nprint('secret seen:', hashlib.sha256("
                                 f"os.environ['API_KEY'].encode()).hexdigest() == {digest!r})\nsys.exit(3)\n")
    run = ws.experiment("s").submit(JobSpec(source_directory=src, script="fail.py", secrets={"API_KEY": VALUE}))
    details = run.wait_for_completion(timeout=60, raise_on_error=False)
    assert details["status"] == "Failed", details
    assert "secret seen: True" in run.file_path(run.main_log()).read_text()
    [run_dir] = ws.paths.cluster_dir("local").glob(f"nodes/*/runs/{run.id}")
    assert (run_dir / "run.json").is_file()  # the folder is kept, manifest and all
    assert wait_until(lambda: VALUE not in _secrets_text(ws), 10)
    assert _files_holding(ws.paths.cluster_dir("local"), VALUE) == []
    assert _files_holding(ws.paths.run_dir(run.id), VALUE) == []


def _stalling_python(tmp_path: Path, stalls: int) -> tuple[Path, Path]:
    """A node "python" whose first `stalls` starts hang before the agent reads its manifest."""
    pids, count = tmp_path / "stalled.pids", tmp_path / "starts"
    wrapper = tmp_path / "python"
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo x >> {count}
        if [ "$(wc -l < {count})" -le {stalls} ]; then echo $$ >> {pids}; exec sleep 300; fi
        exec {sys.executable} "$@"
    """))
    wrapper.chmod(0o755)
    return wrapper, pids


def _kill_stalled(pids: Path) -> None:
    for pid in (int(p) for p in pids.read_text().split()) if pids.exists() else ():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _files_holding(root: Path, value: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]


def _manifest_with_secret(ws: bai.Workspace, run: bai.Run, cluster: str) -> Path | None:
    nodes = run.get_details().get("nodes") or []
    if not nodes:
        return None
    manifest = ws.paths.node_dir(cluster, nodes[0]) / "runs" / run.id / "run.json"
    return manifest if manifest.exists() and VALUE in manifest.read_text() else None


def test_a_canceled_run_whose_agent_never_started_leaves_no_secret_on_the_node(
        ws: bai.Workspace, src: Path, tmp_path: Path) -> None:
    wrapper, pids = _stalling_python(tmp_path, stalls=99)
    ws.create_cluster("stall", backend="local", max_nodes=1, python=str(wrapper))
    run = ws.experiment("s").submit(JobSpec(source_directory=src, script="train.py", arguments=["1"],
                                            secrets={"API_KEY": VALUE}), cluster="stall")
    try:
        assert wait_until(lambda: _manifest_with_secret(ws, run, "stall") is not None, 60)
        run.cancel()
        assert wait_until(lambda: run.status == "Canceled", 30), run.status  # not the 60 s start grace
        assert _files_holding(ws.paths.cluster_dir("stall"), VALUE) == []
        assert VALUE not in _secrets_text(ws)
    finally:
        _kill_stalled(pids)


def test_an_engine_killed_before_the_agent_read_its_manifest_leaves_no_secret(
        ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    digest = hashlib.sha256(VALUE.encode()).hexdigest()  # the script must not hold the value itself
    (src / "check.py").write_text("import hashlib, os\nprint('secret seen:', hashlib.sha256("
                                  f"os.environ['API_KEY'].encode()).hexdigest() == {digest!r})\n")
    wrapper, pids = _stalling_python(tmp_path, stalls=1)
    ws.create_cluster("stall", backend="local", max_nodes=1, python=str(wrapper))
    run = ws.experiment("s").submit(JobSpec(source_directory=src, script="check.py",
                                            secrets={"API_KEY": VALUE}), cluster="stall")
    try:
        assert wait_until(lambda: _manifest_with_secret(ws, run, "stall") is not None and pids.exists(), 60)
        engine = engine_info(ws.path)["pid"]
        os.kill(engine, signal.SIGKILL)        # between writing the manifest and the agent reading it
        assert wait_until(lambda: process_gone(engine), 10)
        _kill_stalled(pids)                   # ... and that agent never comes
        forget(ws.path)
        assert run.wait_for_completion(timeout=90)["status"] == "Completed"  # relaunched by the next engine
        assert "secret seen: True" in run.file_path(run.main_log()).read_text()
        assert _files_holding(ws.paths.cluster_dir("stall"), VALUE) == []
        assert VALUE not in _secrets_text(ws)
    finally:
        _kill_stalled(pids)

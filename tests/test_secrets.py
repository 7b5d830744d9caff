"""Secret values show nowhere and outlive no run: repr, a Queued cancel, a failed submit."""
from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from tests.support import wait_until

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

    monkeypatch.setattr(ws.history, "insert_run", locked)  # the insert after the secrets step fails
    with pytest.raises(sqlite3.OperationalError):
        ws.experiment("s").submit(JobSpec(source_directory=src, script="train.py", secrets={"API_KEY": VALUE}))
    assert VALUE not in _secrets_text(ws)
    assert ws.secrets.values() == []


def test_a_finished_run_leaves_no_secret(ws: bai.Workspace, src: Path) -> None:
    run = ws.experiment("s").submit(JobSpec(source_directory=src, script="train.py", arguments=["1"],
                                            secrets={"API_KEY": VALUE}))
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    assert wait_until(lambda: VALUE not in _secrets_text(ws), 10)

"""Workspace retention: ws.prune and `batchai workspace prune` free finished runs' files and the
snapshot objects no run needs, and never anything an active or queued run uses."""
from __future__ import annotations

import datetime as dt
import json
import os
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.cli import main as cli_main
from batchai_jupyter.errors import SpecError
from batchai_jupyter.retention import PruneResult
from tests.support import wait_until

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(autouse=True)
def _no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHAI_PRUNE_GRACE_SECONDS", "0")  # objects written by this test count


def _project(folder: Path, name: str, body: str, data: int = 200_000) -> Path:
    folder.mkdir(parents=True)
    (folder / "job.py").write_text(textwrap.dedent(body))
    (folder / f"{name}.bin").write_bytes(os.urandom(data))  # each project's own objects
    return folder


def _objects(ws: bai.Workspace) -> set[str]:
    return {p.parent.name + p.name for p in ws.store.objects.glob("*/*") if not p.name.startswith(".")}


def _run(ws: bai.Workspace, src: Path, exp: str = "p") -> bai.Run:
    run = ws.experiment(exp).submit(JobSpec(source_directory=src, script="job.py"), cluster="local")
    run.wait_for_completion(show_output=False, timeout=120)
    return run


JOB = """
    import os
    os.makedirs("outputs", exist_ok=True)
    open("outputs/model.bin", "wb").write(os.urandom(300_000))
    print("trained", flush=True)
"""


def test_a_dry_run_reports_and_removes_nothing_then_prune_frees_it(ws: bai.Workspace, tmp_path: Path) -> None:
    old = [_run(ws, _project(tmp_path / f"old{i}", f"old{i}", JOB)) for i in range(2)]
    newest = _run(ws, _project(tmp_path / "new", "new", JOB))
    old_digests = {d for r in old for d, _s, _m in ws.store.manifest(ws.history.run_row(r.id)["snapshot"])
                   ["files"].values() if _s == 200_000}
    before = _objects(ws)
    dry = ws.prune(older_than=0, keep_last=1)
    assert isinstance(dry, PruneResult) and dry.dry_run
    assert sorted(r.id for r in dry.runs) == sorted(r.id for r in old)
    assert all(r.bytes >= 300_000 for r in dry.runs) and dry.objects == 2 and dry.object_bytes >= 400_000
    assert _objects(ws) == before and all(r.get_file_names() for r in old)  # nothing went
    done = ws.prune(older_than=0, keep_last=1, dry_run=False)
    assert done.bytes_freed == dry.bytes_freed and not done.dry_run
    assert not old_digests & _objects(ws)
    for run in old:  # the history and metrics stay; the files are gone
        assert run.get_details()["status"] == "Completed" and run.get_file_names() == []
        assert ws.history.run_row(run.id)["properties"]["files_pruned"] > 0
    assert list(newest.stream(follow=False)) == ["trained"]  # keep_last=1 kept the newest
    again = ws.prune(older_than=0, keep_last=1, dry_run=False)
    assert again.bytes_freed == 0 and again.runs == []


def test_older_than_and_experiments_pick_the_runs(ws: bai.Workspace, tmp_path: Path) -> None:
    a = _run(ws, _project(tmp_path / "a", "a", JOB), exp="keepme")
    b = _run(ws, _project(tmp_path / "b", "b", JOB), exp="scratch")
    assert ws.prune(older_than=dt.timedelta(days=1)).runs == []
    assert ws.prune(older_than="2w").runs == []
    assert [r.id for r in ws.prune(older_than="0s", experiments="scratch").runs] == [b.id]
    assert [r.id for r in ws.prune(experiments=["keepme"]).runs] == [a.id]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"older_than": "soon"}, "older_than"), ({"older_than": -1}, "older_than"),
    ({"keep_last": -1}, "keep_last"), ({"keep_last": "3"}, "keep_last"), ({"experiments": [3]}, "experiments"),
])
def test_bad_prune_arguments_name_the_field(ws: bai.Workspace, kwargs: dict, field: str) -> None:
    with pytest.raises(SpecError, match=field) as err:
        ws.prune(**kwargs)
    assert err.value.field == field and err.value.valid


def test_prune_under_a_running_engine_loses_nothing_active(ws: bai.Workspace, tmp_path: Path) -> None:
    ws.create_cluster("one", max_nodes=1)
    finished = _run(ws, _project(tmp_path / "done", "done", JOB))
    slow = _project(tmp_path / "slow", "slow", """
        import os, time
        for i in range(6):
            print("step", i, flush=True)
            time.sleep(0.3)
        os.makedirs("outputs", exist_ok=True)
        open("outputs/final.txt", "w").write(open("slow.bin", "rb").read()[:4].hex())
    """)
    queued_src = _project(tmp_path / "queued", "queued", JOB)
    exp = ws.experiment("live")
    running = exp.submit(JobSpec(source_directory=slow, script="job.py"), cluster="one")
    queued = exp.submit(JobSpec(source_directory=queued_src, script="job.py"), cluster="one")
    assert wait_until(lambda: running.get_details()["status"] == "Running", 60)
    assert queued.get_details()["status"] == "Queued"
    result = ws.prune(older_than=0, dry_run=False)
    assert [r.id for r in result.runs] == [finished.id]
    assert running.wait_for_completion(show_output=False, timeout=120)["status"] == "Completed"
    assert queued.wait_for_completion(show_output=False, timeout=120)["status"] == "Completed"
    assert list(running.stream(follow=False)) == [f"step {i}" for i in range(6)]
    out = tmp_path / "final.txt"
    running.download_file("outputs/final.txt", out)
    assert out.read_text() == (slow / "slow.bin").read_bytes()[:4].hex()
    assert list(queued.stream(follow=False)) == ["trained"]


def test_run_delete_frees_its_files_and_prune_its_snapshot(ws: bai.Workspace, tmp_path: Path) -> None:
    run = _run(ws, _project(tmp_path / "gone", "gone", JOB))
    digest = next(d for d, s, _m in ws.store.manifest(ws.history.run_row(run.id)["snapshot"])["files"].values()
                  if s == 200_000)
    files = ws.paths.run_dir(run.id)
    assert files.is_dir()
    run.delete()
    assert not files.exists()
    assert digest in _objects(ws)
    ws.prune(dry_run=False)
    assert digest not in _objects(ws)
    # the same source submitted again is hashed and stored anew (no stale cache hit)
    again = _run(ws, tmp_path / "gone")
    assert list(again.stream(follow=False)) == ["trained"] and digest in _objects(ws)


def test_the_cli_prints_a_table_and_removes_only_with_yes(ws: bai.Workspace, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(ws, _project(tmp_path / "c", "c", JOB))
    assert cli_main(["workspace", "prune", "-w", str(ws.path), "--older-than", "0"]) == 0
    out = capsys.readouterr().out
    assert f"run {run.id}" in out and "would free" in out and "bytes" in out.splitlines()[0]
    assert run.get_file_names()
    assert cli_main(["workspace", "prune", "-w", str(ws.path), "--older-than", "0", "--yes"]) == 0
    assert "freed" in capsys.readouterr().out and run.get_file_names() == []
    assert cli_main(["workspace", "prune", "-w", str(ws.path), "--older-than", "soon"]) == 2
    assert "older_than" in capsys.readouterr().err


def test_a_schedules_pinned_snapshot_is_kept(ws: bai.Workspace, tmp_path: Path) -> None:
    src = _project(tmp_path / "nightly", "nightly", JOB)
    ws.create_schedule("nightly", JobSpec(source_directory=src, script="job.py"), cluster="local",
                       every=dt.timedelta(days=1), start_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1))
    pinned = {d for p in ws.store.manifests.glob("*.json")
              for d, _s, _m in json.loads(p.read_text())["files"].values()}
    result = ws.prune(dry_run=False)
    assert result.objects == 0 and pinned <= _objects(ws)


def test_a_pack_of_small_files_goes_when_no_kept_run_needs_it(ws: bai.Workspace, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "job.py").write_text("print('old', flush=True)\n")
    for i in range(30):  # small files: one pack, not 30 objects
        (old / f"m{i}.py").write_text(f"old {i}")
    first = _run(ws, old)
    packs = ws.store.objects / "packs"
    assert sorted(p.suffix for p in packs.iterdir()) == [".idx", ".pack"]
    newest = _run(ws, _project(tmp_path / "new", "new", JOB))  # its own objects, none packed with old's
    dry = ws.prune(older_than=0, keep_last=1)
    assert dry.objects >= 31 and len(list(packs.iterdir())) == 2  # the pack's objects counted, kept
    ws.prune(older_than=0, keep_last=1, dry_run=False)
    assert list(packs.iterdir()) == [] and first.get_file_names() == []
    assert list(newest.stream(follow=False)) == ["trained"]
    again = _run(ws, old)  # the folder's hash cache named the pruned pack: read again, packed again
    assert again.get_details()["status"] == "Completed" and list(again.stream(follow=False)) == ["old"]

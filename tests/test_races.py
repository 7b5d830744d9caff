"""Races that must not fail or corrupt: concurrent workspace creation, ./logs copied right."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from tests.support import wait_until


def test_concurrent_create_with_exist_ok_on_a_new_path(tmp_path: Path) -> None:
    path = tmp_path / "new" / ".batchai"
    code = textwrap.dedent(f"""
        import sys, batchai_jupyter as bai
        sys.stdin.readline()  # start together
        ws = bai.Workspace.create({str(path)!r}, exist_ok=True)
        print(ws.name, [c.name for c in ws.clusters()], ws.get_default_datastore().name)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "new ['local'] workspacestore"
    assert not [p.name for p in path.iterdir() if ".tmp" in p.name]  # no temp file left
    ws = bai.Workspace(path)
    assert [c.name for c in ws.clusters()] == ["local"] and len(ws.datastores()) == 1


def _logs_job(folder: Path, gates: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.py").write_text(textwrap.dedent(f"""
        import os, time
        def wait(name):
            while not os.path.exists(os.path.join({str(gates)!r}, name)):
                time.sleep(0.02)
        os.makedirs("logs", exist_ok=True)
        for name in ("train.tmp.log", "data.tmp", "a.tmpfile"):
            with open(os.path.join("logs", name), "w") as fh:
                fh.write(name + " kept\\n")
        def rewrite(text):  # in place: same file, written from its start
            mode = "r+b" if os.path.exists("logs/progress.txt") else "wb"
            with open("logs/progress.txt", mode) as fh:
                fh.write(text.encode())
        rewrite("A" * 100)
        wait("1")
        rewrite("B" * 100)            # same size, another start
        wait("2")
        rewrite("C" * 150)            # larger, another start
    """))
    return folder


def test_logs_with_tmp_in_their_name_are_copied_and_rewrites_are_recopied(ws: bai.Workspace,
                                                                          tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    run = ws.experiment("logs").submit(JobSpec(source_directory=_logs_job(tmp_path / "src", gates),
                                               script="job.py"))
    copy = ws.run_files_dir(run.id) / "logs" / "progress.txt"

    def has(text: str) -> bool:
        return copy.exists() and copy.read_text() == text

    assert wait_until(lambda: has("A" * 100), 60)
    (gates / "1").write_text("go")
    assert wait_until(lambda: has("B" * 100), 30)    # not the old copy kept at the same size
    (gates / "2").write_text("go")
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    assert copy.read_text() == "C" * 150               # not "A..." + the new end
    logs = ws.run_files_dir(run.id) / "logs"
    for name in ("train.tmp.log", "data.tmp", "a.tmpfile"):
        assert (logs / name).read_text() == name + " kept\n"

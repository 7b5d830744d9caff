"""A backend and a datastore kind from outside the package, found through entry points.

tests/plugins/toy_plugin.py is installed here as a distribution of its own (a dist-info with
entry_points.txt on a temporary path): nothing in batchai_jupyter names it. A real job then runs
on its backend — the engine, a separate process, finds the backend the same way — with an input
downloaded from and an output uploaded to its datastore kind. docs/extending.md describes this.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import json, sys
from pathlib import Path
import batchai_jupyter as bai
from batchai_jupyter.compute import backend_names
from batchai_jupyter.datastores import datastore_kinds

tmp = Path(sys.argv[1])
ws = bai.Workspace.create(tmp / "ws" / ".batchai")
result = {"backends": list(backend_names()), "kinds": datastore_kinds()}
try:
    ws.create_cluster("bad", backend="toyfolders", max_nodes=1, root="relative/path")
except bai.SpecError as exc:
    result["bad_root"] = {"field": exc.field, "text": str(exc)}
try:
    ws.create_cluster("nope", backend="no-such-backend", max_nodes=1)
except bai.BatchAIError as exc:
    result["unknown"] = str(exc)
ds = ws.register_datastore("toy", kind="toyfolder", path=str(tmp / "store"))
(tmp / "upload").mkdir()
(tmp / "upload" / "numbers.txt").write_text("3 4 5\n")
ds.upload(str(tmp / "upload"), target_path="data", show_progress=False)
ws.create_cluster("toys", backend="toyfolders", max_nodes=1, root=str(tmp / "nodes"))
src = tmp / "job"
src.mkdir()
(src / "add.py").write_text(
    "import os\n"
    "nums = open(os.path.join(os.environ['AZ_BATCHAI_INPUT_DATA'], 'numbers.txt')).read().split()\n"
    "total = sum(int(n) for n in nums)\n"
    "print('total', total)\n"
    "open(os.path.join(os.environ['AZ_BATCHAI_OUTPUT_RESULT'], 'total.txt'), 'w').write(str(total))\n")
spec = bai.JobSpec(source_directory=str(src), script="add.py",
                   inputs={"DATA": ds.path("data").as_download()},
                   outputs={"RESULT": ds.path("results").as_upload()})
run = ws.experiment("plugins").submit(spec, cluster="toys")
details = run.wait_for_completion(show_output=False, timeout=120, raise_on_error=False)
result["status"] = details["status"]
result["error"] = details.get("error")
result["stdout"] = (run.workspace.path / "runs" / run.id / "files" / "stdout.txt").read_text()
result["store_files"] = ds.list("results")
result["node_folders"] = sorted(p.name for p in (tmp / "nodes" / "toys" / "nodes").iterdir()) \
    if (tmp / "nodes" / "toys" / "nodes").exists() else []
result["run_id"] = run.id
from batchai_jupyter.engine.control import stop_engine
stop_engine(ws.path)
print("RESULT " + json.dumps(result))
'''


def install_plugin(site: Path) -> None:
    """What `pip install toy-batchai-plugin` would leave: the module and its dist-info."""
    site.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "plugins" / "toy_plugin.py", site / "toy_batchai_plugin.py")
    info = site / "toy_batchai_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-batchai-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [batchai_jupyter.backends]
        toyfolders = toy_batchai_plugin:ToyFolderCompute

        [batchai_jupyter.datastores]
        toyfolder = toy_batchai_plugin:ToyFolderDatastore
        """))


def plugin_env(site: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    env["BATCHAI_ENGINE_IDLE_SECONDS"] = "20"
    return env


@pytest.mark.timeout(240)
def test_a_backend_and_a_datastore_kind_from_entry_points_run_a_job(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_plugin(site)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=plugin_env(site),
                          capture_output=True, text=True, timeout=200, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert "toyfolders" in result["backends"] and "local" in result["backends"]
    assert "toyfolder" in result["kinds"] and "azure_blob" in result["kinds"]
    # the plugin's own validation runs, and its typed error names the field
    assert result["bad_root"]["field"] == "root"
    # an unknown backend lists the valid ones, the plugin's included
    assert "no-such-backend" in result["unknown"] and "toyfolders" in result["unknown"]
    assert result["status"] == "Completed", result["error"]
    assert "total 12" in result["stdout"]
    assert result["store_files"] == [f"results/{result['run_id']}/total.txt"]
    assert (tmp_path / "store" / "results" / result["run_id"] / "total.txt").read_text() == "12"
    # the nodes are the plugin's folders, outside the workspace: the engine ran the plugin's code
    assert result["node_folders"] and not (tmp_path / "ws" / ".batchai" / "clusters" / "toys").exists()


@pytest.mark.timeout(300)
def test_the_conformance_suite_runs_against_a_backend_from_an_entry_point(tmp_path: Path) -> None:
    """What docs/extending.md tells a backend's author to run: the shared suite, on their backend."""
    site = tmp_path / "site"
    install_plugin(site)
    env = plugin_env(site)
    env["BATCHAI_CONFORMANCE_CLUSTER"] = json.dumps(
        {"backend": "toyfolders", "max_nodes": 2, "root": str(tmp_path / "nodes")})
    chosen = "submit_completes or failing_process_fails or cancel_stops or gang_of_two"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/compute/test_conformance.py",
         "-k", f"extra and ({chosen})"], cwd=REPO, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "4 passed" in proc.stdout, proc.stdout[-2000:]
    # the runs really went through the plugin's node folders
    assert any((tmp_path / "nodes" / "conformance" / "nodes").iterdir())

"""nbconvert: a notebook executed headless and exported to HTML keeps each run's final summary,
its log tail and its charts (as images), and no widget view that nothing could render."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import batchai_jupyter as bai
from tests.notebook.lab_server import write_notebook


def test_executed_notebook_exports_the_final_summary(ws: bai.Workspace, tmp_path: Path) -> None:
    job = textwrap.dedent("""\
        import time
        from batchai_jupyter import Run
        r = Run.get_context()
        for step in range(5):
            r.log("loss", 1.0 / (step + 1), step=step)
            print(f"\\x1b[32mepoch {step}\\x1b[0m loss {1.0 / (step + 1):.2f}", flush=True)
            time.sleep(0.3)
        print("training finished", flush=True)
    """)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(job)
    cells = [
        f"import batchai_jupyter as bai, time\nws = bai.Workspace({str(ws.path)!r})",
        "%load_ext batchai_jupyter",
        # shown while it runs: the display becomes the static summary when the run ends
        (f"run = ws.experiment('nbc').submit(bai.JobSpec(source_directory={str(tmp_path / 'src')!r}, "
         "script='train.py'))\nbai.RunDetails(run).show()"),
        "run.wait_for_completion()\ntime.sleep(1.5)",
        "run",  # a finished run displays as its summary
    ]
    nb = tmp_path / "report.ipynb"
    write_notebook(nb, cells)
    out = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute",
                          "--ExecutePreprocessor.timeout=180", "--output", "report", str(nb)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    assert html.count('class="bai-run-summary"') == 2
    assert "training finished" in html and "epoch 4 loss 0.20" in html
    assert "\x1b[" not in html and "[32m" not in html  # colour codes do not show raw
    assert 'data-metric="loss"' in html and "data:image/svg+xml;base64," in html
    assert 'data-status="Completed"' in html
    # nothing left for a widget manager to look up
    executed = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook",
                               "--execute", "--stdout", str(nb)], capture_output=True, text=True,
                              timeout=300, cwd=tmp_path, check=False)
    assert executed.returncode == 0, executed.stderr[-3000:]
    kinds = {m for c in json.loads(executed.stdout)["cells"] for o in c.get("outputs", [])
             for m in o.get("data", {})}
    assert "application/vnd.jupyter.widget-view+json" not in kinds, kinds

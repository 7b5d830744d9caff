"""A saved notebook keeps the summary of a RunDetails display, never its widget view: the
display is marked in the kernel, and the server extension's pre-save hook drops the view of
marked outputs (so a reopened notebook never says "model not found")."""
from __future__ import annotations

import copy
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import batchai_jupyter as bai
from batchai_jupyter.notebook.save_hook import (
    VIEW_MARKER,
    WIDGET_VIEW,
    keep_summaries,
    strip_widget_views,
    workspace_summary,
)
from batchai_jupyter.notebook.widget import RunDetails
from tests.notebook.lab_server import jupyter_server, write_notebook

OTHER_WIDGET = {"output_type": "display_data", "metadata": {},
                "data": {WIDGET_VIEW: {"model_id": "abc", "version_major": 2, "version_minor": 0},
                         "text/plain": "IntSlider(value=3)"}}


def _outputs_of_a_live_view(ws: bai.Workspace, tmp_path: Path) -> list[dict[str, Any]]:
    """What RunDetails(run).show() puts in a cell, as nbformat outputs (the run is canceled)."""
    src = tmp_path / "src"
    src.mkdir()
    run = ws.experiment("saved").submit(bai.JobSpec(source_directory=src, command="sleep 30"))
    try:
        with capture_output() as captured:
            widget = RunDetails(run, start=False)
            widget.show()
        widget.close()
    finally:
        run.cancel()
    return [{"output_type": "display_data", "data": dict(o.data), "metadata": dict(o.metadata)}
            for o in captured.outputs]


def test_a_live_view_is_saved_as_its_summary(ws: bai.Workspace, tmp_path: Path) -> None:
    InteractiveShell.instance()  # display() needs a shell
    outputs = _outputs_of_a_live_view(ws, tmp_path)
    assert len(outputs) == 1
    live = outputs[0]
    assert WIDGET_VIEW in live["data"] and VIEW_MARKER in live["metadata"]
    html = live["data"]["text/html"]
    assert "bai-run-summary" in html
    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "execution_count": 1,
                     "outputs": [copy.deepcopy(live), copy.deepcopy(OTHER_WIDGET)]}]}
    model = {"type": "notebook", "content": nb}
    keep_summaries(model, path="x.ipynb", contents_manager=None)
    saved, other = nb["cells"][0]["outputs"]
    assert WIDGET_VIEW not in saved["data"] and saved["data"]["text/html"] == html
    assert VIEW_MARKER not in saved["metadata"]
    assert other == OTHER_WIDGET  # a widget that is not RunDetails is left alone
    assert strip_widget_views(nb) == 0  # nothing left to do
    keep_summaries({"type": "file", "content": "text"})  # other files pass untouched


def test_the_saved_summary_is_the_one_at_the_save(ws: bai.Workspace, tmp_path: Path) -> None:
    """Where the workspace is at hand (the server serves it), the saved summary is the run's
    as of the save, not the one of the moment the view was shown."""
    InteractiveShell.instance()
    live = _outputs_of_a_live_view(ws, tmp_path)[0]
    run_id = live["metadata"][VIEW_MARKER]["run"]
    assert 'data-status="Canceled"' not in live["data"]["text/html"]
    ws.get_run(run_id).wait_for_completion(raise_on_error=False)
    nb = {"cells": [{"cell_type": "code", "outputs": [copy.deepcopy(live)]}]}
    assert strip_widget_views(nb, workspace_summary(lambda: ws)) == 1
    assert 'data-status="Canceled"' in nb["cells"][0]["outputs"][0]["data"]["text/html"]
    # a server without that workspace (or with none) keeps the summary the view was shown with
    for other in (None, bai.Workspace.create(tmp_path / "other")):
        nb = {"cells": [{"cell_type": "code", "outputs": [copy.deepcopy(live)]}]}
        assert strip_widget_views(nb, workspace_summary(lambda o=other: o)) == 1
        assert nb["cells"][0]["outputs"][0]["data"]["text/html"] == live["data"]["text/html"]


def test_the_server_extension_saves_the_summary(ws: bai.Workspace, tmp_path: Path) -> None:
    """A real Jupyter server with the package's server extension: a notebook PUT through the
    contents API (what the front end's save does) lands on disk without the view."""
    InteractiveShell.instance()
    live = _outputs_of_a_live_view(ws, tmp_path)[0]
    root = tmp_path / "root"
    root.mkdir()
    write_notebook(root / "n.ipynb", ["RunDetails(run).show()"])
    nb = json.loads((root / "n.ipynb").read_text())
    nb["cells"][0]["outputs"] = [live, OTHER_WIDGET]
    with jupyter_server(tmp_path, root, "lab") as (base, token):
        body = json.dumps({"type": "notebook", "format": "json", "content": nb}).encode()
        req = urllib.request.Request(f"{base}/api/contents/n.ipynb", data=body, method="PUT",
                                     headers={"Authorization": f"token {token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
    saved = json.loads((root / "n.ipynb").read_text())["cells"][0]["outputs"]
    kinds = [set(o["data"]) for o in saved]
    if WIDGET_VIEW in kinds[0]:
        pytest.fail("the server extension did not drop the RunDetails widget view: "
                    + (tmp_path / "jupyter-lab.log").read_text()[-2000:])
    assert kinds == [{"text/html", "text/plain"}, {WIDGET_VIEW, "text/plain"}]
    assert "bai-run-summary" in "".join(saved[0]["data"]["text/html"])  # nbformat splits lines

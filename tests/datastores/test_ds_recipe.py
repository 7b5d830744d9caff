"""The datastore recipe, run end to end against real Azurite (nbval runs it on the local default)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import ACCOUNT, KEY

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "03-datastores.ipynb"


def test_recipe_on_azure_blob(azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                       f"BlobEndpoint={azurite.endpoint};")
    shutil.copy(RECIPE, tmp_path / RECIPE.name)
    nb = nbformat.read(tmp_path / RECIPE.name, as_version=4)
    try:
        nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        from batchai_jupyter.engine.control import stop_engine
        if (tmp_path / ".batchai" / "workspace.json").exists():
            stop_engine(tmp_path / ".batchai")
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "AzureBlobDatastore(name='recipeblob'" in text
    assert "learned y = " in text and "rmse" in text
    assert KEY not in (tmp_path / RECIPE.name).read_text() and KEY not in text

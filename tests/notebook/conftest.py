"""Fixtures of the notebook tests: a real IPython shell with the extension loaded."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

import batchai_jupyter as bai


@pytest.fixture
def ip(ws: bai.Workspace, monkeypatch: pytest.MonkeyPatch,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteractiveShell]:
    """The IPython shell, `%load_ext batchai_jupyter` done, magics pointed at the test workspace;
    the current folder (the default --source) is an empty notebook folder."""
    monkeypatch.setenv("BATCHAI_WORKSPACE", str(ws.path))
    monkeypatch.chdir(tmp_path_factory.mktemp("notebook-folder"))
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("batchai_jupyter")
    yield shell

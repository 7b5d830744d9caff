"""The README works when followed line by line.

Its fenced blocks are run as written: ```python blocks in a subprocess against a temp workspace
on the local cluster (from a copy of the clone's examples/), ```ipython blocks as the cells of a
notebook in a real kernel (one block is one cell; the blocks of one section make one notebook),
```python example blocks (they need your own hosts) are compiled and their `bai.` names checked,
and every `batchai ...` line of a ```bash block is parsed by the real CLI parser.
"""
from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import batchai_jupyter as bai
from batchai_jupyter.cli import build_parser
from batchai_jupyter.engine.control import stop_engine

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Block:
    lang: str
    info: str
    code: str
    section: str


def blocks(lang: str, info: str = "") -> list[Block]:
    text = README.read_text()
    found = []
    for match in FENCE.finditer(text):
        heading = re.findall(r"^#+ (.*)$", text[:match.start()], re.MULTILINE)
        block = Block(match.group(1), match.group(2).strip(), match.group(3), heading[-1] if heading else "")
        if block.lang == lang and block.info == info:
            found.append(block)
    return found


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder like the root of a clone (examples/ copied), with a workspace of its own."""
    shutil.copytree(REPO / "examples", tmp_path / "clone" / "examples")
    monkeypatch.setenv("BATCHAI_WORKSPACE", str(tmp_path / "ws" / ".batchai"))
    monkeypatch.setenv("BATCHAI_ENGINE_IDLE_SECONDS", "30")
    yield tmp_path / "clone"
    if (tmp_path / "ws" / ".batchai").exists():
        stop_engine(tmp_path / "ws" / ".batchai")


def test_the_readme_has_the_blocks_this_test_runs() -> None:
    assert blocks("python") and blocks("ipython") and blocks("python", "example") and blocks("bash")
    sections = {b.section for b in blocks("ipython")}
    assert "Quickstart in your own notebook" in sections


def test_python_blocks_run_as_written(user_dir: Path) -> None:
    for block in blocks("python"):
        proc = subprocess.run([sys.executable, "-c", block.code], cwd=user_dir, capture_output=True,
                              text=True, timeout=240, check=False)
        assert proc.returncode == 0, f"README block in {block.section!r} failed:\n{proc.stdout}\n{proc.stderr}"
        assert "RunId:" in proc.stdout and "Completed" in proc.stdout, proc.stdout
    assert (user_dir / "model.json").exists()  # run.download_file("outputs/model.json")
    ws = bai.Workspace.from_config()
    assert [r.status for r in ws.experiment("regression").get_runs()] == ["Completed"]


def _notebook(cells: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def _execute(nb: nbformat.NotebookNode, folder: Path) -> nbformat.NotebookNode:
    client = NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    return client.execute()


def test_notebook_blocks_run_as_cells_in_a_kernel(user_dir: Path) -> None:
    sections: dict[str, list[str]] = {}
    for block in blocks("ipython"):
        sections.setdefault(block.section, []).append(block.code)
    for section, cells in sections.items():
        done = _execute(_notebook(cells), user_dir)
        text = "".join(out.get("text", "") for cell in done.cells for out in cell.get("outputs", []))
        assert "step 2" in text and "Completed" in text, (section, text[-2000:])
    runs = bai.Workspace.from_config().experiment("demo").get_runs()
    assert [r.status for r in runs] == ["Completed"]
    assert runs[0].get_metrics()["loss"] == [1.0, 0.5, 1.0 / 3]


def test_the_quickstart_pasted_into_one_cell_fails_as_the_readme_says(user_dir: Path) -> None:
    cells = [b.code for b in blocks("ipython") if b.section == "Quickstart in your own notebook"]
    with pytest.raises(CellExecutionError) as err:
        _execute(_notebook(["".join(cells)]), user_dir)
    assert "Line magic function `%%batchai_job` not found" in str(err.value)
    assert "Line magic function `%%batchai_job` not found" in README.read_text()


def test_example_blocks_compile_and_name_real_api(tmp_path: Path) -> None:
    for block in blocks("python", "example"):
        tree = ast.parse(block.code)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "bai":
                assert hasattr(bai, node.attr), node.attr
        called = {n.func.attr for n in ast.walk(tree)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        assert called <= {n for n in dir(bai) + dir(bai.Workspace) + dir(bai.Experiment) if not n.startswith("_")} \
            | {"from_config"}, called


def test_every_cli_line_parses(capsys: pytest.CaptureFixture[str]) -> None:
    lines = [line.split("#", 1)[0].strip() for b in blocks("bash") for line in b.code.splitlines()]
    commands = [line for line in lines if line.startswith("batchai ")]
    assert len(commands) >= 5
    parser = build_parser()
    for line in commands:
        argv = shlex.split(line.replace("<run-id>", "abc123"))[1:]
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"README's `{line}` does not parse: {capsys.readouterr().err}")


def test_the_readme_names_no_file_a_user_lacks() -> None:
    text = README.read_text()
    for path in re.findall(r"`((?:docs|recipes|examples|binder|ci|bench|tools)/[\w./-]*)`", text):
        assert (REPO / path).exists(), path
    assert os.access(REPO / "binder" / "postBuild", os.X_OK)
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))
    for target in set(re.findall(r"`(?:VENV=\S+ )?make ([\w-]+)", text)) | {"demo", "test", "test-fast"}:
        assert target in targets, f"README names `make {target}`, the Makefile has no such target"


def test_every_environment_variable_the_readme_names_is_read_somewhere() -> None:
    """A variable the README tells a person to set does something: the package, the tests, the
    Makefile or the set-up scripts read it."""
    named = set(re.findall(r"\bBATCHAI_[A-Z0-9_]+", README.read_text()))
    assert named
    sources = [*(REPO / "batchai_jupyter").rglob("*.py"), *(REPO / "tests").rglob("*.py"),
               *(REPO / "ci").glob("*.sh"), REPO / "Makefile"]
    text = "\n".join(p.read_text() for p in sources if p != Path(__file__))
    assert [name for name in sorted(named) if name not in text] == []


def test_the_workspace_lookup_the_readme_describes(tmp_path: Path) -> None:
    """~/.batchai appears on first use (even `batchai engine status`); a project's own .batchai/
    made as the README says is found from anywhere below it."""
    home, project = tmp_path / "home", tmp_path / "my-project"
    home.mkdir()
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "BATCHAI_WORKSPACE"}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    block = next(b for b in blocks("bash") if "cd my-project" in b.code)
    subprocess.run(["bash", "-euc", block.code], cwd=tmp_path, env=env, check=True, timeout=60)
    assert (project / ".batchai" / "workspace.json").exists()
    assert (project / ".gitignore").read_text() == ".batchai/\n"

    def status(cwd: Path) -> str:
        out = subprocess.run([sys.executable, "-m", "batchai_jupyter.cli", "engine", "status", "-o", "json"],
                             cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60)
        return str(json.loads(out.stdout)["workspace"])
    (project / "notebooks" / "deep").mkdir(parents=True)
    assert status(project / "notebooks" / "deep") == str(project / ".batchai")
    assert not (home / ".batchai").exists()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert status(outside) == str(home / ".batchai")
    assert (home / ".batchai" / "workspace.json").exists()

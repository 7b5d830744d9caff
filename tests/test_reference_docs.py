"""docs/reference/ lists the whole public contract, so it cannot drift from the code.

Every public name, method, error class, CLI command and option and magic option must appear in
its page, and job-environment.md must name every variable that real jobs on the local cluster
see (a plain one with an input and an output, a 2-node PyTorch one, a TensorFlow one).
"""
from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import JobSpec

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "docs" / "reference"
sys.path.insert(0, str(REPO))
from tools import gen_reference  # noqa: E402


def _page(name: str) -> str:
    return (REF / name).read_text()


def test_every_public_name_and_method_is_in_the_python_reference() -> None:
    text = _page("python-api.md")
    for name in bai.__all__:
        assert f"`{name}`" in text or f"`bai.{name}(" in text, name
    for name, cls in gen_reference.public_classes().items():
        for member, _ in gen_reference.members(cls):
            assert f"`.{member}" in text, f"{name}.{member}"


def test_every_error_class_is_in_the_errors_reference() -> None:
    text = _page("errors.md")
    for cls in gen_reference.error_classes():
        assert f"| `{cls.__name__}` |" in text, cls.__name__
    exported = {n for n in bai.__all__ if isinstance(getattr(bai, n), type) and issubclass(getattr(bai, n), Exception)}
    assert exported <= {c.__name__ for c in gen_reference.error_classes()}


def test_every_cli_command_and_option_is_in_the_cli_reference() -> None:
    text = _page("cli.md")
    commands = gen_reference.cli_commands()
    assert len(commands) >= 15
    for path, parser in commands:
        heading = f"## `batchai {' '.join(path)}`"
        assert heading in text, heading
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help", "--workspace", "-w", "--output", "-o"):
                    assert option in section, (path, option)


def test_every_magic_and_option_is_in_the_magics_reference() -> None:
    text = _page("magics.md")
    for name, func in gen_reference.magic_functions().items():
        assert f"`%{name}`" in text, name
        parser = getattr(func, "parser", None)
        for action in getattr(parser, "_actions", []):
            for option in action.option_strings:
                assert option in text, (name, option)


def test_every_page_is_linked_from_the_index() -> None:
    index = _page("README.md")
    for page in REF.glob("*.md"):
        if page.name != "README.md":
            assert f"({page.name})" in index, page.name


DUMP = """
import json, os, sys
inherited = set(json.loads(sys.argv[1]))
print("ENV " + json.dumps(sorted(k for k in os.environ if k not in inherited)), flush=True)
"""
# set by the shell, the C runtime, Python or OpenMPI, not by us
NOT_OURS = re.compile(r"^(OMPI_.*|PMIX_.*|PRTE_.*|LC_CTYPE|PWD|OLDPWD|SHLVL|_)$")


def _variables_seen(ws: bai.Workspace, folder: Path, **spec: object) -> set[str]:
    run = ws.experiment("env").submit(JobSpec(source_directory=folder, script="dump.py",
                                              arguments=[json.dumps(sorted(os.environ))], **spec))  # type: ignore[arg-type]
    run.wait_for_completion(timeout=180)
    seen: set[str] = set()
    for name in run.get_file_names():
        if name.startswith("stdout") and name.endswith(".txt"):
            for line in Path(run.download_file(name, folder / "got" / name)).read_text().splitlines():
                if line.startswith("ENV "):
                    seen.update(json.loads(line[4:]))
    assert seen, run.get_file_names()
    return {k for k in seen if not NOT_OURS.match(k)}


def test_job_environment_page_names_every_variable_a_job_sees(ws: bai.Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "dump.py").write_text(textwrap.dedent(DUMP))
    store = ws.get_default_datastore()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("1")
    store.upload(tmp_path / "data", target_path="d", show_progress=False)
    seen = _variables_seen(ws, folder, inputs={"DATASET": store.path("d").as_download()},
                           outputs={"MODEL": store.path("m").as_upload()})
    seen |= _variables_seen(ws, folder, node_count=2, process_count_per_node=1, distribution="pytorch")
    try:
        seen |= _variables_seen(ws, folder, node_count=2, distribution="tensorflow",
                                parameter_server_count=1, worker_count=1)
    except bai.BatchAIError as exc:  # pragma: no cover - tensorflow layout needs 2 nodes
        pytest.fail(f"tensorflow job did not run: {exc}")
    page = _page("job-environment.md")
    named = set(re.findall(r"`([A-Z][A-Z0-9_]*(?:<ID>)?)`", page))
    missing = sorted(k for k in seen
                     if k not in named and re.sub(r"_(DATASET|MODEL)$", "_<ID>", k) not in named)
    assert not missing, f"docs/reference/job-environment.md does not name: {missing}"
    assert {"AZ_BATCHAI_INPUT_DATASET", "AZ_BATCHAI_OUTPUT_MODEL", "MASTER_ADDR", "TF_CONFIG"} <= seen


def test_code_and_docs_cite_only_the_projects_own_docs() -> None:
    """A reader has docs/ (and docs/reference/), not the files the contract was first written in."""
    names = ("API" + ".md", "DESIGN" + ".md")  # spelled apart so this file does not match itself
    found = []
    for folder in ("batchai_jupyter", "docs", "tests", "bench", "tools", "recipes", "binder", "ci"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".md", ".ipynb", ".sh", ".txt") and path.is_file():
                text = path.read_text(errors="replace")
                found += [f"{path.relative_to(REPO)}: {n}" for n in names if n in text]
    assert not found, f"cite docs/ or docs/reference/ instead: {found}"

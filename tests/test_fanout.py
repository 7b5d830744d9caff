"""Fan-outs of many short child runs: each child is still its own process, and the engine's
cost per child stays a fraction of a second (agents wake the engine as a run ends)."""
from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

import batchai_jupyter as bai


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "jobs"
    path.mkdir()
    (path / "child.py").write_text(textwrap.dedent("""
        import os, sys
        print("child", sys.argv[1], "pid", os.getpid(), "cwd", os.getcwd(), flush=True)
    """))
    return path


def _children(folder: Path, n: int) -> list[bai.JobSpec]:
    return [bai.JobSpec(source_directory=folder, script="child.py", arguments=[str(i)]) for i in range(n)]


def _line(run: bai.Run) -> list[str]:
    lines = [line for line in run.stream(follow=False) if line.startswith("child ")]
    assert len(lines) == 1, lines
    return lines[0].split()


def test_fanout_children_are_each_their_own_process(ws, folder) -> None:
    ws.create_cluster("fan", max_nodes=2, idle_seconds_before_scaledown=600)
    parent = ws.experiment("fan").submit(bai.JobSpec(wait_for_children=True), cluster="fan")
    children = parent.submit_children(_children(folder, 12))
    details = parent.wait_for_completion(timeout=300)
    assert details["status"] == "Completed"
    assert details["properties"]["children"] == {"active": 0, "ended": 12}
    seen = [_line(child) for child in children]
    assert [words[1] for words in seen] == [str(i) for i in range(12)]  # each its own output
    assert len({words[3] for words in seen}) == 12                       # its own process
    assert len({words[5] for words in seen}) == 12                       # its own working folder
    for child in children:
        got = child.get_details()
        assert got["status"] == "Completed"
        assert list(got["properties"]["exit_codes"].values()) == [0]


def test_fanout_engine_cost_per_child_is_well_under_a_second(ws, folder) -> None:
    ws.create_cluster("fan", max_nodes=2, idle_seconds_before_scaledown=600)
    exp = ws.experiment("fan")
    exp.submit(_children(folder, 1)[0], cluster="fan").wait_for_completion(timeout=120)  # nodes up
    parent = exp.submit(bai.JobSpec(wait_for_children=True), cluster="fan")
    start = time.perf_counter()
    parent.submit_children(_children(folder, 30))
    assert parent.wait_for_completion(timeout=300)["status"] == "Completed"
    per_child = (time.perf_counter() - start) / 30
    # two nodes: a run that ends gives its node to the next at once, not a poll interval later
    assert per_child < 0.75, f"{per_child * 1000:.0f} ms per child"

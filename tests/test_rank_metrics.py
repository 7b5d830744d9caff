"""A metric logged by several ranks stays one series per rank in the charts; get_metrics keeps
Azure ML's shape (one list)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import batchai_jupyter as bai
from batchai_jupyter import JobSpec
from batchai_jupyter.run_context.channel import process_rank
from batchai_jupyter.view.metrics import metric_series


def test_the_rank_comes_from_the_launcher_only_when_there_are_several() -> None:
    assert process_rank({}) is None
    assert process_rank({"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert process_rank({"WORLD_SIZE": "4", "RANK": "3"}) == 3
    assert process_rank({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}) == 1
    assert process_rank({"PMI_SIZE": "2", "PMI_RANK": "x"}) is None


def test_two_ranks_logging_one_metric_chart_as_two_series(ws: bai.Workspace, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ranks.py").write_text(textwrap.dedent("""
        import os, subprocess, sys
        from batchai_jupyter import Run
        if len(sys.argv) == 1:   # two "ranks", as a launcher would start them
            for rank in (0, 1):
                env = dict(os.environ, WORLD_SIZE="2", RANK=str(rank))
                subprocess.run([sys.executable, __file__, str(rank)], env=env, check=True)
        else:
            rank = int(sys.argv[1])
            for step in range(3):
                Run.get_context().log("loss", 10 * rank + step, step=step)
    """))
    run = ws.experiment("ranks").submit(JobSpec(source_directory=src, script="ranks.py"))
    assert run.wait_for_completion(timeout=60)["status"] == "Completed"
    assert sorted(run.get_metrics()["loss"]) == [0, 1, 2, 10, 11, 12]   # Azure ML's shape: one list
    series, _others = metric_series(ws.history.metric_rows([run.id]))
    assert series == {"loss [rank 0]": [(0, 0), (1, 1), (2, 2)], "loss [rank 1]": [(0, 10), (1, 11), (2, 12)]}

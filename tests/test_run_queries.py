"""exp.get_runs() reads history a page at a time and behaves like Azure ML's generator and a list."""
from __future__ import annotations

from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter import run_query
from batchai_jupyter.history import RunHistory


def _fill(history: RunHistory, experiment: str, count: int, start: int = 0) -> list[str]:
    ids = [f"{experiment}_{start + i:05d}" for i in range(count)]
    for run_id in ids:
        history.insert_run(run_id, experiment, "local", {}, None, {"i": run_id[-2:]}, 1, status="Completed")
    return ids


def test_get_runs_pages_through_the_whole_history_newest_first(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_query, "PAGE_SIZE", 7)  # many pages for few runs
    ws = bai.Workspace.create(tmp_path / ".batchai")
    ids = _fill(ws.history, "a", 40)
    _fill(ws.history, "b", 5)                       # another experiment's runs stay out
    runs = ws.experiment("a").get_runs()
    assert [r.id for r in runs] == list(reversed(ids))
    assert len(runs) == 40 and bool(runs) and runs[0].id == ids[-1] and runs[39].id == ids[0]
    assert next(runs).id == ids[-1] and next(runs).id == ids[-2]   # next() as on Azure ML's generator
    assert ws.get_run(ids[3]) in runs and ws.get_run("b_00001") not in runs
    limited = ws.experiment("a").get_runs(limit=10)
    assert [r.id for r in limited] == list(reversed(ids))[:10] and len(limited) == 10
    assert not ws.experiment("nothing").get_runs() and list(ws.experiment("nothing").get_runs()) == []
    assert "40 runs" in repr(runs)


def test_runs_inserted_while_paging_do_not_shift_the_pages(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_query, "PAGE_SIZE", 5)
    ws = bai.Workspace.create(tmp_path / ".batchai")
    ids = _fill(ws.history, "a", 12)
    seen = []
    for i, run in enumerate(ws.experiment("a").get_runs()):
        seen.append(run.id)
        if i == 2:
            _fill(ws.history, "a", 3, start=100)     # newer runs: not repeated, nothing skipped
    assert seen == list(reversed(ids))


def test_an_old_database_numbers_on_from_its_highest_run(tmp_path: Path) -> None:
    import sqlite3
    path = tmp_path / "history.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE experiments(name TEXT PRIMARY KEY, created REAL NOT NULL)")
        db.execute("CREATE TABLE runs(id TEXT PRIMARY KEY, number INTEGER NOT NULL, experiment TEXT NOT NULL, "
                   "cluster TEXT, parent_id TEXT, status TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 1, "
                   "spec TEXT NOT NULL, snapshot TEXT, tags TEXT NOT NULL DEFAULT '{}', properties TEXT NOT "
                   "NULL DEFAULT '{}', error TEXT, nodes TEXT NOT NULL DEFAULT '[]', created REAL NOT NULL, "
                   "started REAL, ended REAL, cancel_requested INTEGER NOT NULL DEFAULT 0)")
        db.execute("INSERT INTO experiments VALUES('a', 1.0)")
        db.execute("INSERT INTO runs(id, number, experiment, status, spec, created) "
                   "VALUES('old', 7, 'a', 'Completed', '{}', 1.0)")
    history = RunHistory(path)
    history.insert_run("new", "a", "local", {}, None, {}, 1)
    assert history.run_row("new")["number"] == 8


def test_a_deleted_runs_number_is_not_given_again(tmp_path: Path) -> None:
    ws = bai.Workspace.create(tmp_path / ".batchai")
    ids = _fill(ws.history, "a", 3)
    assert ws.history.delete_run(ids[2]) == "Completed"
    _fill(ws.history, "a", 1, start=50)
    numbers = sorted(r.number for r in ws.experiment("a").get_runs())
    assert numbers == [1, 2, 4]


@pytest.mark.parametrize("filters", [{"experiment": "a"}, {}, {"experiment": "a", "top_level": True},
                                     {"parent_id": "x"}, {"status": ("Queued", "Running")}])
def test_run_pages_use_an_index(tmp_path: Path, filters: dict) -> None:
    history = RunHistory(tmp_path / "history.db")
    _fill(history, "a", 3)
    from batchai_jupyter.history.runs import _run_filter
    where, args = _run_filter(filters.get("experiment"), filters.get("status"), filters.get("parent_id"),
                              None, None, filters.get("top_level", False))
    sql = ("EXPLAIN QUERY PLAN SELECT rowid, * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY created DESC, rowid DESC LIMIT 100")
    plan = " ".join(r["detail"] for r in history.query(sql, tuple(args)))
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    assert "TEMP B-TREE" not in plan or "status" in filters, plan   # the order comes from the index

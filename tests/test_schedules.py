"""Schedules: fire times (cron, time zones, DST), bad input, and the engine firing real runs
under a clock the test moves (BATCHAI_CLOCK_FILE), across an engine SIGKILL and restart."""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import batchai_jupyter as bai
from batchai_jupyter.engine.control import engine_info, forget
from batchai_jupyter.schedules.clock import CLOCK_FILE_ENV
from batchai_jupyter.schedules.firing import start
from batchai_jupyter.schedules.options import ScheduleOptions
from batchai_jupyter.schedules.store import ScheduleStore
from batchai_jupyter.schedules.timing import iso, next_slots, slots_between
from tests.support import process_gone, wait_until

UTC = dt.timezone.utc
HOUR = 3600.0


def _t(*args: int, tz: str = "UTC") -> float:
    import zoneinfo
    return dt.datetime(*args, tzinfo=zoneinfo.ZoneInfo(tz)).timestamp()


# -- fire times (pure) ---------------------------------------------------------------------------
def test_spring_forward_gap_fires_once_right_after_the_gap() -> None:
    berlin = ScheduleOptions(cron="30 2 * * *", tz="Europe/Berlin")
    after = _t(2026, 3, 28, 12)
    slots = [iso(s, "Europe/Berlin") for s in next_slots(berlin, after, after, 3)]
    # 02:30 does not exist on 29 March 2026 in Berlin: the fire is at 03:00 CEST, the gap's end
    assert slots == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]
    every_quarter = ScheduleOptions(cron="*/15 2 * * *", tz="Europe/Berlin")
    night = slots_between(every_quarter, after, _t(2026, 3, 29, 12), after)
    assert [iso(s, "Europe/Berlin") for s in night] == ["2026-03-29T03:00:00+02:00"]  # four slots, one fire


def test_repeated_autumn_hour_fires_once() -> None:
    berlin = ScheduleOptions(cron="30 2 * * *", tz="Europe/Berlin")
    after = _t(2026, 10, 24, 12)
    slots = [iso(s, "Europe/Berlin") for s in next_slots(berlin, after, after, 2)]
    assert slots == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    # from inside the repeated hour (its second pass), 02:30 is not fired again
    second_pass = _t(2026, 10, 25, 1, 10)  # 02:10 CET
    assert iso(next_slots(berlin, second_pass, second_pass, 1)[0], "Europe/Berlin") == "2026-10-26T02:30:00+01:00"


def test_start_at_is_inclusive_end_at_bounds_and_every_counts_from_start() -> None:
    start_at = _t(2026, 1, 1, 0, 5)
    hourly = ScheduleOptions(cron="5 * * * *", start_at=start_at, end_at=start_at + 2 * HOUR)
    assert next_slots(hourly, start_at - 10, 0, 5) == [start_at, start_at + HOUR, start_at + 2 * HOUR]
    every = ScheduleOptions(every=900, start_at=start_at)
    assert next_slots(every, start_at + 1, 0, 2) == [start_at + 900, start_at + 1800]
    new_york = ScheduleOptions(cron="0 9 * * 1", tz="America/New_York")
    monday = next_slots(new_york, _t(2026, 7, 1), 0, 1)[0]
    assert iso(monday, "America/New_York") == "2026-07-06T09:00:00-04:00"


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("options", "field", "hint"), [
    ({"cron": "61 * * * *"}, "cron", "minute hour"),
    ({"cron": "* * *"}, "cron", "five fields"),
    ({"cron": "5 * * * *", "tz": "Mars/Olympus"}, "tz", "Europe/Berlin"),
    ({"cron": "5 * * * *", "overlap": "skipp"}, "overlap", "cancel_previous"),
    ({"cron": "5 * * * *", "catchup": "latests"}, "catchup", "latest"),
    ({"cron": "5 * * * *", "code": "git"}, "code", "live"),
    ({"cron": "5 * * * *", "every": dt.timedelta(hours=1)}, "cron", "every="),
    ({}, "cron", "every="),
    ({"every": dt.timedelta(seconds=0)}, "every", "timedelta"),
    ({"cron": "5 * * * *", "start_at": "tomorrow"}, "start_at", "ISO 8601"),
    ({"cron": "5 * * * *", "start_at": 200.0, "end_at": 100.0}, "end_at", "after start_at"),
    ({"cron": "5 * * * *", "run_on_create": "yes"}, "run_on_create", "True"),
])
def test_bad_schedule_input_is_a_spec_error_before_anything_is_stored(ws, src, options, field, hint) -> None:
    spec = bai.JobSpec(source_directory=src, script="train.py")
    objects = list((ws.path / "snapshots").rglob("*"))
    with pytest.raises(bai.SpecError) as err:
        ws.create_schedule("nightly", spec, **options)
    assert err.value.field == field
    assert hint in str(err.value)
    assert ws.schedules() == []
    assert list((ws.path / "snapshots").rglob("*")) == objects  # nothing snapshotted either


def test_bad_spec_cluster_and_names(ws, src) -> None:
    with pytest.raises(bai.SpecError) as err:
        ws.create_schedule("s", bai.JobSpec(source_directory=src, script="missing.py"), cron="5 * * * *")
    assert err.value.field == "script"
    with pytest.raises(bai.ClusterNotFound):
        ws.create_schedule("s", bai.JobSpec(source_directory=src, script="train.py"), cron="5 * * * *",
                           cluster="nope")
    with pytest.raises(bai.SpecError) as err:
        ws.create_schedule("a b", bai.JobSpec(source_directory=src, script="train.py"), cron="5 * * * *")
    assert err.value.field == "name"
    assert ws.schedules() == []
    with pytest.raises(bai.SpecError) as err:
        ws.schedule("nope")
    assert err.value.field == "name"


# -- the engine fires, under a clock the test moves -----------------------------------------------
class Clock:
    """The schedules' clock of every process of this test (BATCHAI_CLOCK_FILE)."""

    def __init__(self, path: Path):
        self.path = path
        self.set_offset(0.0)

    def set_offset(self, seconds: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(repr(seconds))
        os.replace(tmp, self.path)

    def jump_to(self, epoch: float) -> None:
        import time
        self.set_offset(epoch - time.time())


@pytest.fixture
def clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    path = tmp_path / "clock"
    monkeypatch.setenv(CLOCK_FILE_ENV, str(path))
    monkeypatch.setenv("BATCHAI_SCHEDULE_GRACE_SECONDS", "60")
    yield Clock(path)


@pytest.fixture
def job(tmp_path: Path) -> bai.JobSpec:
    folder = tmp_path / "score"
    folder.mkdir()
    (folder / "score.py").write_text(textwrap.dedent("""
        import os, sys, time
        print("schedule", os.environ["BATCHAI_SCHEDULE"], "at", os.environ["BATCHAI_SCHEDULED_TIME"], flush=True)
        time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
    """))
    return bai.JobSpec(source_directory=folder, script="score.py")


def _next_hour(now: float) -> float:
    return (now // HOUR + 1) * HOUR


def _runs(ws: bai.Workspace, name: str) -> list[bai.Run]:
    return ws.runs(tags={"schedule": name})


def _outcomes(sched) -> list[tuple[str, str]]:
    return [(f.kind, f.outcome) for f in reversed(sched.fires(None))]


def _kill_engine(ws: bai.Workspace) -> None:
    pid = int(engine_info(ws.path)["pid"])
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: process_gone(pid), 10)
    forget(ws.path)


def test_fires_each_slot_once_with_its_names_and_none_on_create(ws, clock, job) -> None:
    import time
    slot = _next_hour(time.time() + 7 * 24 * HOUR)
    clock.jump_to(slot - 30)
    sched = ws.create_schedule("hourly-scoring", job, cron="0 * * * *", tz="Europe/Berlin", experiment="scoring")
    assert sched.preview(2) == [dt.datetime.fromtimestamp(s, dt.timezone.utc) for s in (slot, slot + HOUR)]
    time.sleep(1.5)
    assert _runs(ws, "hourly-scoring") == [] and sched.fires() == []  # no fire on create
    clock.jump_to(slot + 1)
    assert wait_until(lambda: len(_runs(ws, "hourly-scoring")) == 1, 30)
    run = _runs(ws, "hourly-scoring")[0]
    run.wait_for_completion()
    when = iso(slot, "Europe/Berlin")
    assert (run.files_dir / "stdout.txt").read_text().strip() == f"schedule hourly-scoring at {when}"
    props = run.get_details()["properties"]
    assert (props["schedule"], props["schedule_version"], props["scheduled_time"]) == ("hourly-scoring", 1, when)
    assert run.tags["schedule"] == "hourly-scoring" and run.experiment.name == "scoring"
    time.sleep(1.0)  # further passes of the engine over the same slot start nothing
    assert len(_runs(ws, "hourly-scoring")) == 1
    [fire] = sched.fires()
    assert (fire.outcome, fire.run_id, fire.scheduled_time.isoformat()) == ("started", run.id, when)


def test_engine_sigkill_and_restart_catchup_none_latest_all(ws, clock, job) -> None:
    import time
    ws.create_cluster("cpu", max_nodes=4)
    first = _next_hour(time.time() + 30 * 24 * HOUR)
    clock.jump_to(first - 30)
    scheds = {mode: ws.create_schedule(f"catchup-{mode}", job, cluster="cpu", cron="0 * * * *", catchup=mode)
              for mode in ("none", "latest", "all")}
    clock.jump_to(first + 1)  # on time: each fires once
    assert wait_until(lambda: all(len(_runs(ws, s.name)) == 1 for s in scheds.values()), 30)
    for s in scheds.values():
        _runs(ws, s.name)[0].wait_for_completion(timeout=60)
    _kill_engine(ws)
    clock.jump_to(first + 3 * HOUR + 1800)  # three slots pass while no engine runs
    ws.schedules()  # any client call brings an engine back
    assert wait_until(lambda: all(len(s.fires(None)) == 4 for s in scheds.values()), 30)
    assert _outcomes(scheds["none"])[1:] == [("scheduled", "missed")] * 3
    assert _outcomes(scheds["latest"])[1:] == [("scheduled", "missed"), ("scheduled", "missed"),
                                                ("catchup", "started")]
    assert _outcomes(scheds["all"])[1:] == [("catchup", "started")] * 3
    assert "engine was not running" in (scheds["none"].fires()[0].reason or "")
    counts = {mode: len(_runs(ws, s.name)) for mode, s in scheds.items()}
    assert counts == {"none": 1, "latest": 2, "all": 4}
    for s in scheds.values():  # one run per started slot, never two
        started = [f for f in s.fires(None) if f.outcome == "started"]
        assert len({f.run_id for f in started}) == len(started) == len(_runs(ws, s.name))
    time.sleep(1.0)
    assert {mode: len(_runs(ws, s.name)) for mode, s in scheds.items()} == counts


def _race(ws_path: str, name: str, slot: float, out: str) -> None:
    ws = bai.Workspace(ws_path)
    store = ScheduleStore(ws.history)
    row = store.row(name)
    version = store.version(name, row["version"])
    fired = start(ws, store, version, slot, "scheduled")
    Path(out).write_text(json.dumps(fired["run_id"] if fired else None))


def test_two_processes_racing_for_one_slot_start_one_run(ws, clock, job, tmp_path) -> None:
    import time
    sched = ws.create_schedule("raced", job, cron="0 * * * *")
    sched.pause()  # the engine keeps out; two other processes race
    slot = _next_hour(time.time())
    ctx = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"out{i}" for i in range(4)]
    procs = [ctx.Process(target=_race, args=(str(ws.path), "raced", slot, str(o))) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    results = [json.loads(o.read_text()) for o in outs]
    winners = [r for r in results if r]
    assert len(winners) == 1
    assert [r.id for r in _runs(ws, "raced")] == winners


def test_a_claim_left_by_a_killed_engine_is_finished_once(ws, clock, job) -> None:
    import time
    clock.jump_to(_next_hour(time.time()) + 5)  # no slot of its own comes during the test
    sched = ws.create_schedule("half-done", job, cron="0 * * * *")
    store = ScheduleStore(ws.history)
    slot = _next_hour(time.time()) - 2 * HOUR
    # what an engine killed between claiming a slot and inserting its run leaves behind
    assert store.claim("half-done", 1, slot, "scheduled", "submitting", run_id="half-done_1_deadbeef")
    ws.history.query("UPDATE schedule_fires SET recorded=recorded-60")  # claimed a minute ago
    assert wait_until(lambda: sched.fires()[-1].outcome == "started", 30)
    assert [r.id for r in _runs(ws, "half-done")] == ["half-done_1_deadbeef"]


def test_overlap_skip_cancel_previous_and_queue(ws, clock, job) -> None:
    import time
    ws.create_cluster("cpu", max_nodes=6)
    slow = bai.JobSpec(source_directory=job.source_directory, script="score.py", arguments=["15"])
    first = _next_hour(time.time() + 60 * 24 * HOUR)
    clock.jump_to(first - 30)
    scheds = {mode: ws.create_schedule(f"overlap-{mode}", slow, cluster="cpu", cron="0 * * * *", overlap=mode)
              for mode in ("skip", "cancel_previous", "queue")}
    clock.jump_to(first + 1)
    assert wait_until(lambda: all(len(_runs(ws, s.name)) == 1 for s in scheds.values()), 60)
    assert all(_runs(ws, s.name)[0].status in ("Queued", "Preparing", "Running") for s in scheds.values())
    clock.jump_to(first + HOUR + 1)  # the next slot while the first runs are still running
    assert wait_until(lambda: all(len(s.fires(None)) == 2 for s in scheds.values()), 30)
    skipped = scheds["skip"].fires()[0]
    assert skipped.outcome == "skipped_overlap" and _runs(ws, "overlap-skip")[0].id in (skipped.reason or "")
    assert wait_until(lambda: len(_runs(ws, "overlap-cancel_previous")) == 2, 30)
    newer, older = _runs(ws, "overlap-cancel_previous")
    assert wait_until(lambda: older.status == "Canceled", 60)
    assert scheds["queue"].fires()[0].outcome == "waiting"
    assert len(_runs(ws, "overlap-queue")) == 1
    first_queued = _runs(ws, "overlap-queue")[0]
    first_queued.wait_for_completion(timeout=60)
    assert wait_until(lambda: len(_runs(ws, "overlap-queue")) == 2, 30)
    assert scheds["queue"].fires()[0].outcome == "started"
    assert newer.status in ("Queued", "Preparing", "Running", "Completed")


def test_pause_resume_trigger_update_delete(ws, clock, job) -> None:
    import time
    first = _next_hour(time.time() + 90 * 24 * HOUR)
    clock.jump_to(first - 30)
    sched = ws.create_schedule("ops", job, cron="0 * * * *")
    sched.pause()
    assert sched.state == "paused" and sched.preview(3) == []
    clock.jump_to(first + 2 * HOUR + 5)
    time.sleep(1.0)
    assert _runs(ws, "ops") == []
    sched.resume()
    assert _outcomes(sched) == [("scheduled", "paused")] * 3 and _runs(ws, "ops") == []
    manual = sched.trigger()
    assert manual.get_details()["properties"]["schedule_fire"] == "manual"
    assert sched.fires()[0].outcome == "manual"
    manual.wait_for_completion(timeout=60)
    sched.update(cron="30 * * * *", tz="Asia/Kolkata")
    assert sched.version == 2 and sched.options.cron == "30 * * * *"
    nxt = sched.preview(1)[0]
    assert nxt.minute in (0, 30) and nxt.utcoffset() == dt.timedelta(hours=5, minutes=30)
    clock.jump_to(nxt.timestamp() + 1)
    assert wait_until(lambda: len(_runs(ws, "ops")) == 2, 30), sched.fires()
    assert _runs(ws, "ops")[0].get_details()["properties"]["schedule_version"] == 2
    with pytest.raises(bai.SpecError) as err:
        sched.update(color="red")
    assert err.value.field == "color" and "cron" in str(err.value)
    sched.delete()
    assert ws.schedules() == [] and len(_runs(ws, "ops")) == 2  # runs stay


def test_enabled_schedule_keeps_the_engine_up(ws, clock, job, monkeypatch) -> None:
    import time
    monkeypatch.setenv("BATCHAI_ENGINE_IDLE_SECONDS", "1")
    sched = ws.create_schedule("keepalive", job, cron="0 0 1 1 *")  # once a year
    time.sleep(4)
    assert engine_info(ws.path)["running"]
    sched.pause()
    assert wait_until(lambda: not engine_info(ws.path)["running"], 20)


def test_live_code_snapshots_the_folder_at_fire_time(ws, clock, job) -> None:
    import time
    clock.jump_to(_next_hour(time.time()) + 5)
    folder = Path(job.source_directory)
    sched = ws.create_schedule("live", job, cron="0 * * * *", code="live")
    (folder / "score.py").write_text("print('changed after create')\n")
    run = sched.trigger()
    run.wait_for_completion()
    assert (run.files_dir / "stdout.txt").read_text().strip() == "changed after create"
    frozen = ws.create_schedule("frozen", job, cron="0 * * * *")
    (folder / "score.py").write_text("print('changed again')\n")
    run = frozen.trigger()
    run.wait_for_completion()
    assert (run.files_dir / "stdout.txt").read_text().strip() == "changed after create"


# -- the faces: magic, CLI, systemd unit ---------------------------------------------------------
def test_schedule_magic_cell_and_line_forms(ws, clock, monkeypatch, tmp_path) -> None:
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    monkeypatch.setenv("BATCHAI_WORKSPACE", str(ws.path))
    clock.jump_to(_t(2030, 6, 15, 12))  # far from the 02:00 slot below
    notebook = tmp_path / "notebook"
    notebook.mkdir()
    monkeypatch.chdir(notebook)
    ip = InteractiveShell.instance()
    ip.extension_manager.load_extension("batchai_jupyter")
    body = "import os\nprint('cell job', os.environ['BATCHAI_SCHEDULE'])\n"
    sched = ip.run_cell_magic("batchai_schedule", 'nightly --cron "0 2 * * *" --tz Europe/Berlin --overlap queue '
                              "--env SEED=1 --tag team=ml", body)
    assert isinstance(sched, bai.Schedule)
    assert (sched.options.cron, sched.options.tz, sched.options.overlap) == ("0 2 * * *", "Europe/Berlin", "queue")
    assert sched.experiment == "nightly"
    assert [r["name"] for r in ip.run_line_magic("batchai_schedule", "list")] == ["nightly"]
    run = ip.run_line_magic("batchai_schedule", "trigger nightly")
    run.wait_for_completion()
    assert (run.files_dir / "stdout.txt").read_text().strip() == "cell job nightly"
    assert run.tags == {"team": "ml", "schedule": "nightly"}
    fires = ip.run_line_magic("batchai_schedule", "fires nightly")
    assert [(f["outcome"], f["run_id"]) for f in fires] == [("manual", run.id)]
    ip.run_line_magic("batchai_schedule", "pause nightly")
    assert ws.schedule("nightly").state == "paused"
    with pytest.raises(UsageError, match="overlap"):
        ip.run_cell_magic("batchai_schedule", 'other --cron "0 2 * * *" --overlap sometimes', body)
    with pytest.raises(UsageError, match="valid: list, show"):
        ip.run_line_magic("batchai_schedule", "explode nightly")
    with pytest.raises(UsageError, match="no schedule named"):
        ip.run_line_magic("batchai_schedule", "fires ghost")
    assert "--catchup" in ip.find_cell_magic("batchai_schedule").__doc__
    ip.run_line_magic("batchai_schedule", "delete nightly")
    assert ws.schedules() == []


def test_cli_schedule_commands(ws, clock, job) -> None:
    import time

    from tests.test_cli import batchai
    clock.jump_to(_next_hour(time.time()) + 5)  # the next slot is minutes away
    src = str(job.source_directory)
    out = batchai(ws, "schedule", "create", "cli-sched", "--script", "score.py", "--source", src,
                  "--cron", "*/10 * * * *", "--tz", "America/New_York", "-o", "json")
    assert json.loads(out.stdout)["tz"] == "America/New_York"
    assert "cli-sched" in batchai(ws, "schedule", "list").stdout
    times = json.loads(batchai(ws, "schedule", "preview", "cli-sched", "-n", "3", "-o", "json").stdout)
    assert len(times) == 3 and all(dt.datetime.fromisoformat(t).minute % 10 == 0 for t in times)
    started = json.loads(batchai(ws, "schedule", "trigger", "cli-sched", "-o", "json").stdout)
    assert started["run"].startswith("cli-sched_")
    fires = json.loads(batchai(ws, "schedule", "fires", "cli-sched", "-o", "json").stdout)
    assert fires[0]["run_id"] == started["run"] and fires[0]["outcome"] == "manual"
    bad = batchai(ws, "schedule", "create", "bad", "--command", "true", "--cron", "5 * * * *", "--catchup", "most",
                  check=False)
    assert bad.returncode == 2 and "catchup" in bad.stderr and "latest" in bad.stderr
    batchai(ws, "schedule", "delete", "cli-sched")
    assert "cli-sched" not in batchai(ws, "schedule", "list").stdout


def test_install_service_writes_a_unit_systemd_accepts(ws, tmp_path) -> None:
    import shutil
    import subprocess
    import sys

    from tests.test_cli import batchai
    out = batchai(ws, "engine", "install-service", "--user", "--unit-dir", str(tmp_path / "units"))
    [unit] = list((tmp_path / "units").glob("batchai-engine-*.service"))
    text = unit.read_text()
    assert f"--workspace {ws.path} --idle-exit -1" in text
    assert f"ExecStart={sys.executable} -m batchai_jupyter.engine serve" in text
    assert "Restart=always" in text and "KillMode=process" in text and "WantedBy=default.target" in text
    assert f"systemctl --user daemon-reload && systemctl --user enable --now {unit.name}" in out.stdout
    system = batchai(ws, "engine", "install-service", "--unit-dir", str(tmp_path / "system"))
    assert "WantedBy=multi-user.target" in next((tmp_path / "system").glob("*.service")).read_text()
    assert "systemctl enable --now" in system.stdout
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip(reason="systemd-analyze is not installed: the unit's syntax was not checked by systemd")
    check = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    problems = [line for line in (check.stdout + check.stderr).splitlines()
                if unit.name in line and "Failed to" not in line]  # no running systemd here: skip bus errors
    assert check.returncode == 0 or not problems, check.stdout + check.stderr


def test_run_on_create_starts_one_manual_run(ws, clock, job) -> None:
    import time
    sched = ws.create_schedule("eager", job, every=dt.timedelta(days=1), run_on_create=True)
    [run] = _runs(ws, "eager")
    assert [(f.kind, f.outcome, f.run_id) for f in sched.fires()] == [("manual", "manual", run.id)]
    assert run.wait_for_completion()["status"] == "Completed"
    time.sleep(1.0)
    assert len(_runs(ws, "eager")) == 1  # the first interval slot is a day away

"""Schedules (docs/schedules.md): a run of a stored JobSpec at every slot of a cron line or interval.

options.py (checked options) · timing.py (fire times, time zones, DST) · clock.py (what "now"
is) · store.py (the tables of history.db) · firing.py (one slot -> one run) · runner.py (the
engine's pass) · client.py (the Schedule handle) · rows.py (what the magic and the CLI show).
Nothing here imports the engine or the submit pipeline: the engine wraps runner.py as a step,
and the Workspace hands client.py the pipeline's first half.
"""

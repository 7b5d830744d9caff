"""The engine: one process per workspace, the only writer of run state.

`loop.py` holds the process and its steps, `driver.py` one active run, `control.py` what a
client uses to start, find and stop the engine. Importing this package imports none of them,
so a client that only needs `control` never loads the engine's code.
"""

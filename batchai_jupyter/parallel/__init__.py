"""Parallel runs over mini-batches (docs/schedules.md): the config users submit, and the worker that
every process of such a run executes (`python -m batchai_jupyter.parallel.worker`)."""

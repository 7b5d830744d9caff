"""ParallelRunConfig: score many items in mini-batches on many processes (Azure ML's ParallelRunStep).

`exp.submit(cfg, cluster=...)` turns it into a JobSpec (`to_job`): every process of the run
executes the worker (worker.py) with the config in BATCHAI_PARALLEL, and a list of items
travels in the snapshot. Checked before anything is stored: a bad field is a SpecError naming
it and what is valid. Standard library only (the worker reads the same constants on nodes).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import SpecError
from ..spec import MAX_NODES, MAX_PROCESSES_PER_NODE, JobSpec

OUTPUTS = ("append_row", "per_batch")
OUTPUT_FORMATS = ("csv", "jsonl")
#: the snapshot file holding items=[...]; the input id under which inputs= is staged
ITEMS_FILE = "_batchai_parallel/items.json"
INPUT_ID = "PARALLEL_INPUT"
CONFIG_ENV = "BATCHAI_PARALLEL"
WORKER_COMMAND = "python -m batchai_jupyter.parallel.worker"


@dataclass
class ParallelRunConfig:
    """What to score and how (docs/schedules.md, fan-out).

    Parameters
    ----------
    source_directory, entry_script: the folder snapshotted with the run and the script in it
        that defines `init()` (once per worker process) and `run(mini_batch) -> rows`.
    inputs: a DataReference (ds.path("sensors/").as_download()) whose files are the items (a
        mini-batch is a list of their paths); or items: a list of JSON values.
    mini_batch_size: items per mini-batch; node_count, process_count_per_node: the workers.
    output: append_row (every batch's rows in one file, outputs/parallel_run_step.<fmt>) or
        per_batch (outputs/batches/batch-<n>.<fmt>); output_format: csv or jsonl.
    error_threshold: failed items tolerated before the run fails (-1: any number).
    retries: tries of a failing mini-batch after the first; batch_timeout: seconds one run() may take.
    """

    source_directory: str | os.PathLike[str] = "."
    entry_script: str = "score.py"
    inputs: Any = None
    items: Sequence[Any] | None = None
    mini_batch_size: int = 10
    node_count: int = 1
    process_count_per_node: int = 1
    output: str = "append_row"
    output_format: str = "csv"
    error_threshold: int = 10
    retries: int = 3
    batch_timeout: int = 300
    environment_variables: dict[str, str] = field(default_factory=dict)
    #: only these items (a retry of failed batches); None: all of them
    only_items: list[Any] | None = None

    def validate(self) -> ParallelRunConfig:
        if (self.inputs is None) == (self.items is None):
            raise SpecError("inputs", "give exactly one of inputs= or items=",
                            "inputs=ds.path('sensors/').as_download() or items=[...]")
        if self.items is not None:
            if isinstance(self.items, (str, bytes)) or not isinstance(self.items, Sequence) or not self.items:
                raise SpecError("items", "must be a non-empty list", "e.g. items=['a.csv', 'b.csv']")
            try:
                json.dumps(list(self.items))
            except (TypeError, ValueError) as exc:
                raise SpecError("items", f"must be JSON values: {exc}", "strings, numbers, lists, dicts") from None
        elif not hasattr(self.inputs, "to_dict"):
            raise SpecError("inputs", f"a {type(self.inputs).__name__} is not a data reference",
                            "ds.path('folder/').as_download() or .as_mount()")
        script = PurePosixPath(str(self.entry_script))
        if not self.entry_script or script.is_absolute() or ".." in script.parts:
            raise SpecError("entry_script", f"{self.entry_script!r} must be a path inside source_directory")
        for name, low, high in (("mini_batch_size", 1, None), ("node_count", 1, MAX_NODES),
                                ("process_count_per_node", 1, MAX_PROCESSES_PER_NODE), ("retries", 0, 100),
                                ("batch_timeout", 1, None), ("error_threshold", -1, None)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
                raise SpecError(name, f"must be an integer in {low}..{high or 'any'}, got {value!r}",
                                f"{low}..{high or 'any'}")
        source = Path(self.source_directory).expanduser()
        if not (source / script).is_file():
            raise SpecError("entry_script", f"{self.entry_script!r} not found in {str(source)!r}",
                            "a script inside source_directory that defines init() and run(mini_batch)")
        if self.output not in OUTPUTS:
            raise SpecError("output", f"unknown value {self.output!r}", OUTPUTS)
        if self.output_format not in OUTPUT_FORMATS:
            raise SpecError("output_format", f"unknown value {self.output_format!r}", OUTPUT_FORMATS)
        return self

    def worker_settings(self) -> dict[str, Any]:
        """What the worker reads from BATCHAI_PARALLEL."""
        return {"entry_script": str(self.entry_script), "mini_batch_size": self.mini_batch_size,
                "output": self.output, "output_format": self.output_format,
                "error_threshold": self.error_threshold, "retries": self.retries,
                "batch_timeout": self.batch_timeout, "items_file": ITEMS_FILE if self.items is not None else None,
                "input_id": INPUT_ID if self.inputs is not None else None, "only_items": self.only_items,
                "workers": self.node_count * self.process_count_per_node}

    def to_job(self) -> tuple[JobSpec, dict[str, bytes]]:
        """The JobSpec every process runs the worker with, and the files added to its snapshot."""
        self.validate()
        env = {**self.environment_variables, CONFIG_ENV: json.dumps(self.worker_settings())}
        spec = JobSpec(source_directory=self.source_directory, command=WORKER_COMMAND, node_count=self.node_count,
                       process_count_per_node=self.process_count_per_node, environment_variables=env,
                       inputs={INPUT_ID: self.inputs} if self.inputs is not None else {})
        extra = {ITEMS_FILE: json.dumps(list(self.items)).encode()} if self.items is not None else {}
        return spec, extra

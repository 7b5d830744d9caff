"""What a client reads of a parallel run: its progress, its failed mini-batches, the retry spec."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..spec import JobSpec
from .config import CONFIG_ENV


def is_parallel(spec: dict[str, Any]) -> bool:
    return CONFIG_ENV in (spec.get("environment_variables") or {})


def progress(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The last progress row the run logged (batches total/done/failed/running, items/s, eta)."""
    row = metrics.get("parallel")
    if not isinstance(row, dict):
        return None
    return {k: (v[-1] if isinstance(v, list) and v else v) for k, v in row.items()}


def failed_batches(files_dir: Path) -> list[dict[str, Any]]:
    """outputs/failed_batches.json of an ended run: batch, items, attempts, error ([] before)."""
    path = files_dir / "outputs" / "failed_batches.json"
    if not path.is_file():
        return []
    batches: list[dict[str, Any]] = json.loads(path.read_text())
    return batches


def retry_spec(stored: dict[str, Any], failed: list[dict[str, Any]]) -> tuple[JobSpec, dict[str, bytes]]:
    """The run's JobSpec again, limited to the items of its failed batches, and the files to
    add to its snapshot (the items list, for a run given items=)."""
    if not is_parallel(stored):
        raise SpecError("run", "is not a parallel run (submitted with a ParallelRunConfig)")
    if not failed:
        raise SpecError("run", "has no failed mini-batches to retry", "run.failed_batches() lists them")
    spec = JobSpec.from_dict(stored)
    settings = json.loads(spec.environment_variables[CONFIG_ENV])
    items = [item for batch in failed for item in batch["items"]]
    extra: dict[str, bytes] = {}
    if settings.get("items_file"):
        extra[settings["items_file"]] = json.dumps(items).encode()
    else:
        settings["only_items"] = items
    spec.environment_variables = {**spec.environment_variables, CONFIG_ENV: json.dumps(settings)}
    return spec, extra

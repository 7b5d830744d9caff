"""Metric shapes: Azure ML's summary of a run's metrics, and scalar (step, value) series.

Pure functions over the metric rows RunHistory returns ({name, kind, step, value, ...}); the
client API (Run.get_metrics), the widget's tails and the lab server share them.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: JSON-valued metrics of a named kind (run_context/channel.py: log_confusion_matrix, ...)
SCHEMA_KINDS = ("confusion_matrix", "accuracy_table", "predictions", "residuals")
Point = tuple[float, float]
Series = dict[str, list[Point]]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def summarize_metrics(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Azure ML's shape: one value, a list of values, a table of columns, an image path, or
    the JSON of a confusion matrix, accuracy table, predictions or residuals."""
    out: dict[str, Any] = {}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["name"], []).append(row)
    for name, items in grouped.items():
        kind = items[-1]["kind"]
        if kind == "scalar":
            values = [r["value"] for r in items]
            out[name] = values[0] if len(values) == 1 else values
        elif kind == "list":
            out[name] = items[-1]["value"]
        elif kind in ("row", "table"):
            table: dict[str, list[Any]] = {}
            for r in items:
                cols = r["value"] if kind == "table" else {k: [v] for k, v in r["value"].items()}
                for col, vals in cols.items():
                    table.setdefault(col, []).extend(vals)
            out[name] = table
        elif kind == "image":
            paths = [r["value"] for r in items]
            out[name] = paths[0] if len(paths) == 1 else paths
        elif kind in SCHEMA_KINDS:  # Azure ML's {schema_type, schema_version, data}: the last one
            out[name] = items[-1]["value"]
    return out


def add_to_series(series: Series, row: dict[str, Any]) -> bool:
    """Append a numeric scalar row to its series ((step, value); no step: its index); False
    for any other row (lists, tables, images, non-numbers). A metric several ranks log is one
    series per rank ("loss [rank 1]"), not one line zig-zagging between them."""
    value = row["value"]
    if row["kind"] != "scalar" or not is_number(value):
        return False
    rank = row.get("rank")
    points = series.setdefault(row["name"] if rank is None else f"{row['name']} [rank {rank}]", [])
    points.append((row["step"] if row.get("step") is not None else len(points), value))
    return True


def metric_series(rows: Iterable[dict[str, Any]]) -> tuple[Series, list[dict[str, Any]]]:
    """Scalar series of the rows, and the rows that are not numeric scalars."""
    series: Series = {}
    others = [r for r in rows if not add_to_series(series, r)]
    return series, others

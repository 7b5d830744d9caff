"""Table: rows a program can read, HTML a person can — what list-style magics return and what
the CLI prints (`to_text()`), so both show the same columns the same way."""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from . import render


class Table:
    """A list of dict rows with fixed columns; renders as an HTML table or aligned text."""

    def __init__(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None):
        self.rows = [dict(r) for r in rows]
        self.columns = list(columns) if columns is not None else \
            (list(self.rows[0]) if self.rows else [])

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    def _cells(self) -> list[list[str]]:
        return [["" if r.get(c) is None else str(r.get(c)) for c in self.columns] for r in self.rows]

    def to_text(self, empty: str = "(none)") -> str:
        """Aligned columns under a header and a rule; `empty` stands in for no rows."""
        cells = self._cells()
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths)).rstrip(),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
        if not self.rows and empty:
            lines.append(empty)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        return render.table(self.columns, self._cells())


def kv_text(items: Mapping[str, Any]) -> str:
    """One `key  value` line per item, keys aligned; dicts and lists shown as JSON."""
    width = max((len(k) for k in items), default=0)
    lines = []
    for key, value in items.items():
        shown = json.dumps(value, default=str) if isinstance(value, (dict, list)) else value
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)

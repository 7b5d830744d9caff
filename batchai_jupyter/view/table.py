"""Table: what the list-style magics return — rows a program can read, HTML a person can."""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from . import render


class Table:
    """A list of dict rows with fixed columns; renders as an HTML table or aligned text."""

    def __init__(self, rows: Sequence[dict[str, Any]], columns: Sequence[str]):
        self.rows = [dict(r) for r in rows]
        self.columns = list(columns)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.rows[index]

    def _cells(self) -> list[list[str]]:
        return [["" if r.get(c) is None else str(r.get(c)) for c in self.columns] for r in self.rows]

    def __repr__(self) -> str:
        cells = self._cells()
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(self.columns, widths)).rstrip(),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
        if not self.rows:
            lines.append("(none)")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return render.table(self.columns, self._cells())

"""The child runs of a parent in RunDetails: a sortable table (an anywidget), the sweep's charts,
and a child opened in place (its own RunDetails, with a way back)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as W
from traitlets import Bool, List, Unicode

from ..view.children import Sweep, cells, read_sweep, sweep_charts_html

STATIC = Path(__file__).parent / "static"


class ChildTable(anywidget.AnyWidget):
    """Rows of the child runs; the browser sorts them (a click on a header sets `sort_by`,
    again `descending`) and asks for a child with an `open` message."""

    _esm = STATIC / "child_table.js"
    _css = STATIC / "child_table.css"
    columns = List(Unicode()).tag(sync=True)
    rows: List[list[Any]] = List().tag(sync=True)
    ids = List(Unicode()).tag(sync=True)
    best = Unicode("").tag(sync=True)
    primary = Unicode("").tag(sync=True)
    goal = Unicode("maximize").tag(sync=True)
    sort_by = Unicode("").tag(sync=True)
    descending = Bool(True).tag(sync=True)

    def __init__(self, on_open: Callable[[str], None], **kwargs: Any):
        super().__init__(**kwargs)
        self._on_open = on_open
        self.on_msg(self._message)

    def _message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("kind") == "open" and content.get("id") in self.ids:
            self._on_open(content["id"])

    def show(self, sweep: Sweep) -> None:
        cols = sweep.columns
        first_metric = sweep.primary and not self.primary and self.sort_by == "#"
        if not self.sort_by or self.sort_by not in cols or first_metric:
            self.sort_by = sweep.primary or "#"
            self.descending = sweep.goal == "maximize" if sweep.primary else False
        values = [[_plain(v) for v in cells(sweep, r)] for r in sweep.rows]
        with self.hold_sync():
            self.columns, self.rows = cols, values
            self.ids = [r["id"] for r in sweep.rows]
            self.best, self.primary, self.goal = sweep.best or "", sweep.primary or "", sweep.goal

    def order(self) -> list[str]:
        """Run ids in the order the table shows them (what the browser's sort does)."""
        if self.sort_by not in self.columns:
            return list(self.ids)
        col = self.columns.index(self.sort_by)
        pairs = list(zip(self.rows, self.ids))
        have = [p for p in pairs if p[0][col] not in (None, "")]
        empty = [p for p in pairs if p[0][col] in (None, "")]
        have.sort(key=lambda p: (not isinstance(p[0][col], (int, float)), p[0][col]),
                  reverse=self.descending)
        return [i for _, i in have + empty]


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


class ChildrenView(W.VBox):
    """Table, charts and the opened child; hidden while the run has no children."""

    def __init__(self, parent_id: str, history: Any, open_child: Callable[[str], Any],
                 primary_metric: str | None = None, goal: str | None = None):
        self.parent_id = parent_id
        self._history = history
        self._open_child = open_child
        self.primary_metric = primary_metric
        self.goal = goal
        self.sweep = Sweep()
        self.table = ChildTable(self.open_child)
        self.charts = W.HTML()
        self.back = W.Button(description="Back to the child runs", icon="arrow-left")
        self.back.on_click(lambda _b: self.close_child())
        self.opened = W.VBox(layout=W.Layout(display="none"))
        self.list_box = W.VBox([W.HTML("<b>Child runs</b>"), self.table, self.charts])
        self.child: Any = None
        super().__init__([self.list_box, self.opened], layout=W.Layout(display="none"))

    def refresh(self) -> Sweep:
        self.sweep = read_sweep(self._history, self.parent_id, self.primary_metric, self.goal)
        if self.sweep.rows:
            self.table.show(self.sweep)
            charts = sweep_charts_html(self._history, self.sweep)
            if charts != self.charts.value:
                self.charts.value = charts
            self.layout.display = None
        return self.sweep

    def open_child(self, run_id: str) -> None:
        """Show one child's RunDetails in place of the list."""
        self.close_child()
        self.child = self._open_child(run_id)
        self.opened.children = [self.back, self.child]
        self.opened.layout.display = None
        self.list_box.layout.display = "none"

    def close_child(self) -> None:
        if self.child is not None:
            self.child.close()
            self.child = None
        self.opened.children = []
        self.opened.layout.display = "none"
        self.list_box.layout.display = None

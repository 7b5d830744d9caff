"""The live metric charts: one anywidget that gets each metric point once.

Each poll sends only the points logged since the last one (`append`: per series its metric,
rank and [step, value] pairs); a view opened later, or a requeue's new attempt, gets every
kept point once (`reset`). The browser side (static/metrics_pane.js) keeps the series and
draws them as SVG line charts, a few times a second at most. The static summary at the end
of a run keeps its own charts (view/render.py, images every front end and nbconvert keep).
"""
from __future__ import annotations

import json
import math
import threading
import uuid
from pathlib import Path
from typing import Any

import anywidget
from traitlets import Unicode

from ..view.metrics import Point
from ..view.reader import MetricsTail

STATIC = Path(__file__).parent / "static"
#: a non-numeric metric (a list, a table, a string) is shown as its text, cut here
OTHER_CHARS = 120


def _pairs(points: list[Point]) -> list[list[float]]:
    """[step, value] pairs for JSON (NaN and infinities are not JSON: not drawn)."""
    return [[x, y] for x, y in points if math.isfinite(y)]


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= OTHER_CHARS else text[:OTHER_CHARS - 1] + "…"


class MetricsPane(anywidget.AnyWidget):
    """Charts of one run's scalar metrics; `poll()` sends the points logged since the last call.

    Parameters
    ----------
    tail: the run's metrics, read from the workspace (view/reader.py).
    """

    _esm = STATIC / "metrics_pane.js"
    _css = STATIC / "metrics_pane.css"
    pane_id = Unicode("").tag(sync=True)

    def __init__(self, tail: MetricsTail, **kwargs: Any):
        super().__init__(pane_id=uuid.uuid4().hex, **kwargs)
        self._lock = threading.RLock()
        self._seq = 0
        self.sent_bytes = 0  # points handed to the front end, as JSON (the benchmark reads it)
        self.on_msg(self._on_front_end)
        self._follow(tail)

    def _follow(self, tail: MetricsTail) -> None:
        self.tail = tail
        self._generation = tail.generation
        self._sent: dict[str, int] = {}
        self._others: dict[str, str] = {}

    @property
    def empty(self) -> bool:
        """Nothing logged yet (the widget keeps the charts hidden until then)."""
        return not self.tail.series and not self._others

    # -- kernel side ---------------------------------------------------------------------------
    def switch(self, tail: MetricsTail) -> None:
        """Follow another tail (a requeue's new attempt): the front end starts over."""
        with self._lock:
            self._follow(tail)
            self.poll(send=False)
            self._reset()

    def poll(self, send: bool = True) -> bool:
        """Read new metric rows and send their points; True when there were any."""
        with self._lock:
            if not self.tail.read():
                return False
            restarted = self.tail.generation != self._generation
            if restarted:
                self._follow(self.tail)
            points = self.tail.new_points(self._sent)
            others = {k: _short(v) for k, v in self.tail.others.items()}
            changed = {k: v for k, v in others.items() if self._others.get(k) != v}
            self._others = others
            if not send:
                return True
            if restarted:
                self._reset()
            elif points or changed:
                self._seq += 1
                content: dict[str, Any] = {"kind": "append", "seq": self._seq,
                                           "points": [[n, r, _pairs(pts)]
                                                      for n, r, _key, pts in points]}
                if changed:
                    content["others"] = changed
                self._deliver(content)
            return True

    def _reset(self) -> None:
        self._sent = {}
        series = [[n, r, _pairs(pts)] for n, r, _key, pts in self.tail.new_points(self._sent)]
        self._deliver({"kind": "reset", "seq": self._seq, "points": series, "others": self._others})

    def _deliver(self, content: dict[str, Any]) -> None:
        self.sent_bytes += len(json.dumps(content["points"]))
        if self.comm is not None:
            self.send(content)

    # -- messages from the browser ---------------------------------------------------------------
    def _on_front_end(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("kind") == "sync":
            with self._lock:
                self._reset()

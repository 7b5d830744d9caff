"""Downsampling a metric series for a chart: buckets that keep each one's lowest and highest
point, so a spike or a dip survives however many points a run logged."""
from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]


def downsample(points: Sequence[Point], max_points: int) -> list[Point]:
    """At most `max_points` points (>= 2) in step order: the first, the last, and the min and
    max of each bucket between (both ends of the range are always kept)."""
    if len(points) <= max_points:
        return list(points)
    if max_points < 4:
        return [points[0], points[-1]][:max_points]
    inner = points[1:-1]
    buckets = (max_points - 2) // 2
    out: list[Point] = [points[0]]
    for b in range(buckets):
        lo, hi = len(inner) * b // buckets, len(inner) * (b + 1) // buckets
        chunk = inner[lo:hi]
        if not chunk:
            continue
        low = min(range(len(chunk)), key=lambda i: chunk[i][1])
        high = max(range(len(chunk)), key=lambda i: chunk[i][1])
        for i in sorted({low, high}):
            out.append(chunk[i])
    out.append(points[-1])
    return out

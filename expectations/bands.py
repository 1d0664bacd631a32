"""Bands learned from history: what a metric's next value may be before it is called anomalous."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = ["learned_band"]


def learned_band(history: Sequence[float], *, k: float = 4.0, min_history: int = 7,
                 min_relative_width: float = 0.1) -> tuple[float, float] | None:
    """A robust band around the history: median ± k · MAD (scaled to a standard deviation).

    Args:
        history: past values, oldest first (e.g. the last 28 days of daily active users).
        k: width of the band in robust standard deviations.
        min_history: with fewer values there is nothing to learn from: returns None.
        min_relative_width: the half-width is at least this share of the median, so a flat
            history does not make every small change an anomaly.

    Returns:
        ``(low, high)`` with ``low >= 0``, or None when the history is too short.
    """
    values = [float(v) for v in history if v is not None]
    if len(values) < min_history:
        return None
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values) * 1.4826
    half = max(k * mad, min_relative_width * abs(median))
    return max(0.0, median - half), median + half

"""History-based anomaly tests: is a figure out of line with its own past?

Volume per landing hour is compared with the same hour of the same weekday in the weeks before
(traffic has a daily and a weekly shape, so the right baseline is "Tuesdays at 14:00", not the
previous hour). The test is a robust z-score: distance from the median in units of the scaled
median absolute deviation (1.4826 · MAD ≈ one standard deviation for normal data), which a single
earlier outlier cannot move. Floors keep it from crying wolf: the scale is at least 5% of the
median (a flat history would otherwise make any change infinite) and at least the Poisson spread
``sqrt(median)`` of a count (quiet hours), and the change must also exceed ``min_relative_change``
of the median.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["VolumeVerdict", "volume_verdict"]

_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class VolumeVerdict:
    """The verdict on one figure against its history.

    Attributes:
        passed: False when the figure is anomalous.
        value: The figure tested.
        median: Median of the history (None without enough history).
        scale: The robust standard deviation used (None without enough history).
        robust_z: ``(value - median) / scale`` (None without enough history).
        n_history: Comparable past figures.
        threshold: |z| above which the figure is anomalous.
        note: One human sentence.
    """

    passed: bool
    value: float
    median: float | None
    scale: float | None
    robust_z: float | None
    n_history: int
    threshold: float
    note: str

    def to_metadata(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def volume_verdict(value: float, history: Sequence[float], *, threshold: float = 4.0, min_history: int = 4,
                   min_relative_change: float = 0.25) -> VolumeVerdict:
    """Judge ``value`` against ``history`` (comparable past figures, e.g. same weekday and hour).

    Fewer than ``min_history`` past figures: passed, with a note (a new lake has no baseline).
    """
    if threshold <= 0 or min_history < 2 or min_relative_change < 0:
        raise ValueError("volume_verdict: threshold > 0, min_history >= 2 and min_relative_change >= 0 are required")
    past = [float(h) for h in history]
    if len(past) < min_history:
        return VolumeVerdict(True, float(value), None, None, None, len(past), threshold,
                             f"only {len(past)} comparable past hour(s), {min_history} needed: not judged")
    median = statistics.median(past)
    mad = statistics.median(abs(h - median) for h in past) * _MAD_TO_SD
    # Floors: 5% of the median (a flat history), and the Poisson spread sqrt(median) of a count.
    scale = max(mad, 0.05 * median, median ** 0.5, 1.0)
    z = (float(value) - median) / scale
    change = abs(float(value) - median) / median if median else float("inf")
    anomalous = abs(z) > threshold and change > min_relative_change
    direction = "above" if value > median else "below"
    note = (f"{value:,.0f} is {change:.0%} {direction} the median {median:,.0f} of {len(past)} comparable hours "
            f"(robust z {z:+.1f}, threshold ±{threshold:g})")
    return VolumeVerdict(not anomalous, float(value), median, scale, z, len(past), threshold, note)

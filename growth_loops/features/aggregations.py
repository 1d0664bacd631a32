"""How a feature's value is computed from a source's daily per-person rollups, declared with the feature.

Every source table (``silver.events``, ``silver.sessions``) is first reduced to one row per
(person, day) — its *rollup* (see ``rollups.py``). A feature then declares one aggregation over
the rollup rows of a person up to the materialized day ``D``:

* ``window_sum(column, days)`` — sum over the last ``days`` days (``D - days + 1 .. D``); 0 when none;
* ``active_days(days)`` — days with at least one activity event in that window;
* ``days_since_last_active()`` — whole days between the last active day and ``D`` (0 = active on ``D``);
* ``latest(column, default)`` — the newest non-null value ever seen (``default`` when none);
* ``distinct_count(column)`` — distinct values ever seen in a list column;
* ``window_ratio(numerator, denominator, days)`` — ratio of two window sums (null when the
  denominator is 0);
* ``days_left(until, while_state)`` — whole days from the end of ``D`` until the newest
  ``until`` timestamp, while the newest value of a state column equals a value (else null).

Windows end with day ``D`` inclusive, and values are valid from the end of ``D`` (the next
midnight UTC), when every event of ``D`` is known.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Literal

from growth_loops.features.errors import FeatureStoreError

__all__ = [
    "Aggregation",
    "active_days",
    "days_left",
    "days_since_last_active",
    "distinct_count",
    "latest",
    "window_ratio",
    "window_sum",
]

AggregationKind = Literal[
    "window_sum", "active_days", "days_since_last_active", "latest", "distinct_count", "window_ratio", "days_left"
]
_KINDS: tuple[str, ...] = (
    "window_sum", "active_days", "days_since_last_active", "latest", "distinct_count", "window_ratio", "days_left"
)


@dataclass(frozen=True)
class Aggregation:
    """One declared aggregation over a source's per-person daily rollups.

    Use the constructor functions of this module rather than building it by hand.

    Attributes:
        kind: What is computed (see the module docstring).
        column: The rollup column read (the numerator for ratios, the deadline for ``days_left``).
        window_days: Length of the trailing window in days, or None for the person's whole history.
        denominator: Rollup column dividing the window sum of ``column`` (``window_ratio`` only).
        state: ``(column, value)``: ``days_left`` is served only while the person's newest
            ``column`` equals ``value``.
        default: Value of ``latest`` for a person who never had a non-null value.
    """

    kind: AggregationKind
    column: str | None = None
    window_days: int | None = None
    denominator: str | None = None
    state: tuple[str, Any] | None = None
    default: Any = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise FeatureStoreError("aggregation", f"kind {self.kind!r} is unknown", f"Use one of {', '.join(_KINDS)}.")
        if self.window_days is not None and (not isinstance(self.window_days, int) or self.window_days < 1):
            raise FeatureStoreError(
                f"{self.kind} aggregation",
                f"window_days must be a positive whole number of days, got {self.window_days!r}",
                "Give the window in days, e.g. 7 or 28.",
            )
        windowed = self.kind in ("window_sum", "active_days", "window_ratio")
        if windowed and self.window_days is None:
            raise FeatureStoreError(f"{self.kind} aggregation", "it needs a window", "Pass days=… to its constructor.")
        if self.kind not in ("active_days", "days_since_last_active") and not self.column:
            raise FeatureStoreError(f"{self.kind} aggregation", "it needs a rollup column", "Name the column it reads.")
        if self.kind == "window_ratio" and not self.denominator:
            raise FeatureStoreError("window_ratio aggregation", "it needs a denominator column", "Name it.")
        if self.kind == "days_left" and self.state is None:
            raise FeatureStoreError("days_left aggregation", "it needs a state", "Pass while_state=(column, value).")

    @property
    def columns(self) -> tuple[str, ...]:
        """The rollup columns this aggregation reads."""
        cols = [c for c in (self.column, self.denominator) if c]
        if self.state:
            cols.append(self.state[0])
        return tuple(cols)

    def window_start(self, day: datetime.date) -> datetime.date | None:
        """First day of the window ending with ``day`` (None for whole-history aggregations)."""
        return None if self.window_days is None else day - datetime.timedelta(days=self.window_days - 1)


def window_sum(column: str, *, days: int) -> Aggregation:
    """Sum of a rollup column over the last ``days`` days (0 when the person had no rows there)."""
    return Aggregation("window_sum", column=column, window_days=days)


def active_days(*, days: int) -> Aggregation:
    """Number of days in the last ``days`` with at least one activity event."""
    return Aggregation("active_days", window_days=days)


def days_since_last_active() -> Aggregation:
    """Whole days from the person's last active day to the materialized day (0 = active that day)."""
    return Aggregation("days_since_last_active")


def latest(column: str, *, default: Any = None) -> Aggregation:
    """The newest non-null value of a rollup column over the person's history."""
    return Aggregation("latest", column=column, default=default)


def distinct_count(column: str) -> Aggregation:
    """Distinct values ever seen in a list-valued rollup column."""
    return Aggregation("distinct_count", column=column)


def window_ratio(numerator: str, denominator: str, *, days: int) -> Aggregation:
    """Window sum of ``numerator`` divided by the window sum of ``denominator`` (null when that is 0)."""
    return Aggregation("window_ratio", column=numerator, denominator=denominator, window_days=days)


def days_left(until: str, *, while_state: tuple[str, Any]) -> Aggregation:
    """Whole days (rounded up, at least 0) from the end of the day until the newest ``until`` timestamp,
    served only while the newest value of ``while_state[0]`` equals ``while_state[1]``."""
    return Aggregation("days_left", column=until, state=while_state)

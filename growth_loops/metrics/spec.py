"""The metric layer's spec: measures and unit metrics, read from the dbt project's vars.

One YAML — ``dbt_project/dbt_project.yml``, var ``metric_layer`` (with ``non_activity_events`` and
``reporting_currency``) — is compiled to SQL by ``dbt_project/macros/metric_layer.sql`` for the marts
and to polars expressions by :mod:`growth_loops.metrics.compile` for the loops. It is read when
asked (:func:`load_metric_layer`), never at import, and cached per file version.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from growth_loops.metrics.errors import MetricError
from lake.dbt_manifest import DBT_PROJECT_DIR

__all__ = ["Measure", "Metric", "MetricLayer", "load_metric_layer"]

Aggregation = Literal["sum", "any", "count_distinct"]
_AGGS = ("sum", "any", "count_distinct")


@dataclass(frozen=True)
class Measure:
    """A person's events of a period reduced to one value (see the spec's comments).

    Attributes:
        name: The measure's name.
        description: What it counts.
        events: Event names it reads (empty: any).
        activity: Only activity events (not ``non_activity_events``).
        reporting_currency: Only events in the reporting currency (the currency when set).
        value: The column summed or counted (None for ``any``).
        agg: ``sum``, ``any`` or ``count_distinct``.
    """

    name: str
    description: str
    events: tuple[str, ...]
    activity: bool
    reporting_currency: str | None
    value: str | None
    agg: Aggregation


@dataclass(frozen=True)
class Metric:
    """A metric measured per unit over a window after the unit's start.

    Attributes:
        name: The metric's name (what guardrails and experiments refer to).
        description: What it means.
        kind: ``mean`` or ``ratio``.
        measure: The measure averaged (``mean``), or the numerator (``ratio``).
        denominator: The denominator measure of a ratio, else None.
        window_days: Length of the window, in days.
        offset_days: Days between the start and the window.
        calendar: Whether the window starts at the UTC midnight of the start's day.
        at_least: For a ``mean`` of a count: a unit counts 1 when its measure is at least this.
    """

    name: str
    description: str
    kind: Literal["mean", "ratio"]
    measure: str
    denominator: str | None
    window_days: int
    offset_days: int = 0
    calendar: bool = False
    at_least: float | None = None

    @property
    def measures(self) -> tuple[str, ...]:
        return (self.measure,) if self.denominator is None else (self.measure, self.denominator)

    def with_window(self, window_days: int | None) -> Metric:
        """The same metric over another window (None: unchanged)."""
        if window_days is None or window_days == self.window_days:
            return self
        if window_days < 1:
            raise MetricError(f"metric {self.name!r}", f"window_days {window_days!r} < 1", "Use at least 1 day.")
        from dataclasses import replace

        return replace(self, window_days=window_days)


@dataclass(frozen=True)
class MetricLayer:
    """The whole spec: measures, unit metrics and the two shared business rules."""

    measures: dict[str, Measure]
    metrics: dict[str, Metric]
    non_activity_events: tuple[str, ...]
    reporting_currency: str
    source: str

    def metric(self, name: str) -> Metric:
        """The unit metric ``name``.

        Raises:
            MetricError: when the spec has no such metric.
        """
        if name not in self.metrics:
            raise MetricError(f"metric {name!r}", f"it is not in the metric layer ({self.source})",
                              f"Use one of {', '.join(sorted(self.metrics))}, or declare it under vars.metric_layer.")
        return self.metrics[name]


def load_metric_layer(project_dir: str | os.PathLike[str] | None = None) -> MetricLayer:
    """Read and validate the metric layer of a dbt project (default: this repository's).

    Raises:
        MetricError: when the spec is missing or malformed (an unknown aggregation, a metric of
            an unknown measure, a ratio without a denominator, …), naming the entry.
    """
    path = Path(project_dir if project_dir is not None else DBT_PROJECT_DIR) / "dbt_project.yml"
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise MetricError(str(path), "the dbt project file does not exist", "Point at the dbt project.") from None
    return _load(str(path), stamp)


@lru_cache(maxsize=4)
def _load(path: str, _stamp: int) -> MetricLayer:
    doc = yaml.safe_load(Path(path).read_text())
    variables = (doc or {}).get("vars") or {}
    spec = variables.get("metric_layer")
    if not isinstance(spec, dict):
        raise MetricError(path, "vars.metric_layer is missing", "Declare the measures and metrics there.")
    currency = variables.get("reporting_currency")
    excluded = variables.get("non_activity_events") or []
    if not isinstance(currency, str) or not isinstance(excluded, list):
        raise MetricError(path, "vars.reporting_currency or vars.non_activity_events is malformed",
                          "Give a currency code and a list of event names.")
    measures = {name: _measure(name, body, currency, path) for name, body in (spec.get("measures") or {}).items()}
    metrics = {name: _metric(name, body, measures, path) for name, body in (spec.get("metrics") or {}).items()}
    return MetricLayer(measures, metrics, tuple(excluded), currency, path)


def _measure(name: str, body: Any, currency: str, path: str) -> Measure:
    subject = f"{path}: measure {name!r}"
    if not isinstance(body, dict):
        raise MetricError(subject, "is not a mapping", "Give events, value and agg.")
    agg = body.get("agg")
    if agg not in _AGGS:
        raise MetricError(subject, f"agg {agg!r} is unknown", f"Use one of {', '.join(_AGGS)}.")
    value = body.get("value")
    if agg != "any" and not isinstance(value, str):
        raise MetricError(subject, f"agg {agg} needs a `value` column", "Name the column summed or counted.")
    if body.get("currency") not in (None, "reporting"):
        raise MetricError(subject, f"currency {body.get('currency')!r} is unknown", "Use `reporting` or omit it.")
    events = body.get("events") or []
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise MetricError(subject, "events is not a list of event names", "List the event names.")
    return Measure(name=name, description=str(body.get("description", "")), events=tuple(events),
                   activity=bool(body.get("activity", False)),
                   reporting_currency=currency if body.get("currency") == "reporting" else None,
                   value=value if agg != "any" else None, agg=agg)


def _metric(name: str, body: Any, measures: dict[str, Measure], path: str) -> Metric:
    subject = f"{path}: metric {name!r}"
    if not isinstance(body, dict):
        raise MetricError(subject, "is not a mapping", "Give type, measure(s) and window_days.")
    kind = body.get("type")
    if kind == "mean":
        measure, denominator = body.get("measure"), None
    elif kind == "ratio":
        measure, denominator = body.get("numerator"), body.get("denominator")
        if denominator not in measures:
            raise MetricError(subject, f"denominator {denominator!r} is not a measure", "Name a declared measure.")
    else:
        raise MetricError(subject, f"type {kind!r} is unknown", "Use mean or ratio.")
    if measure not in measures:
        raise MetricError(subject, f"measure {measure!r} is not declared", "Name a declared measure.")
    window, offset = body.get("window_days"), body.get("offset_days", 0)
    if not isinstance(window, int) or window < 1 or not isinstance(offset, int) or offset < 0:
        raise MetricError(subject, f"window_days {window!r} / offset_days {offset!r} are not whole days",
                          "Give window_days >= 1 and offset_days >= 0.")
    at_least = body.get("at_least")
    if at_least is not None and (kind != "mean" or not isinstance(at_least, (int, float))):
        raise MetricError(subject, "at_least applies to a mean of a count", "Remove it or use type: mean.")
    return Metric(name=name, description=str(body.get("description", "")), kind=kind, measure=measure,
                  denominator=denominator, window_days=window, offset_days=offset,
                  calendar=bool(body.get("calendar", False)),
                  at_least=float(at_least) if at_least is not None else None)

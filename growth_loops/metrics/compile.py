"""The metric layer compiled to polars: what loops, experiments, guardrails and bandits measure.

The same spec the marts compile to SQL (``dbt_project/macros/metric_layer.sql``) becomes:

* :func:`measure_condition` / :func:`measure_aggregate` — a measure as a polars predicate over
  silver events and as an aggregate over a group of them;
* :func:`person_days` — one row per person and UTC date, as ``intermediate.int_events_aggregated_to_person_days``;
* :func:`unit_values` — a unit metric for each unit (a person from a start time) over its window;
  :func:`mature_units` keeps the units whose window has closed; :func:`metric_stats` turns the
  values into the sufficient statistics the experiment engine and the guardrails read;
* :func:`daily_oec` — the OEC figures of ``marts.fct_daily_oec`` from the same definitions.

Events are silver events with at least ``person_id``, ``event_name``, ``event_ts`` (UTC),
``event_date`` and the columns the measures name (``revenue``, ``currency``, ``onboarding_step``).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import polars as pl

from growth_loops.experiments import MeanStats, RatioStats, summarize
from growth_loops.metrics.errors import MetricError
from growth_loops.metrics.spec import Measure, Metric, MetricLayer

__all__ = ["daily_oec", "mature_units", "measure_aggregate", "measure_condition", "metric_stats", "person_days",
           "unit_values"]

_UNIT = "_unit"


def measure_condition(measure: Measure, layer: MetricLayer) -> pl.Expr:
    """Which events a measure reads, as a predicate over silver events."""
    condition = pl.lit(True)
    if measure.events:
        condition = condition & pl.col("event_name").is_in(list(measure.events))
    if measure.activity:
        condition = condition & ~pl.col("event_name").is_in(list(layer.non_activity_events))
    if measure.reporting_currency is not None:
        condition = condition & (pl.col("currency") == measure.reporting_currency)
    return condition


def measure_aggregate(measure: Measure, layer: MetricLayer) -> pl.Expr:
    """The measure over a group of events (0 / false when none qualifies), named after it."""
    condition = measure_condition(measure, layer)
    if measure.agg == "sum":
        expr = pl.col(str(measure.value)).cast(pl.Float64).filter(condition).sum()
    elif measure.agg == "any":
        expr = condition.any()
    else:
        expr = pl.col(str(measure.value)).filter(condition).drop_nulls().n_unique().cast(pl.Int64)
    return expr.alias(measure.name)


def _fill(measure: Measure, column: str) -> pl.Expr:
    default = {"sum": pl.lit(0.0), "any": pl.lit(False), "count_distinct": pl.lit(0, dtype=pl.Int64)}[measure.agg]
    return pl.col(column).fill_null(default)


def _measures(layer: MetricLayer, names: Iterable[str]) -> list[Measure]:
    out = []
    for name in dict.fromkeys(names):
        if name not in layer.measures:
            raise MetricError(f"measure {name!r}", f"it is not in the metric layer ({layer.source})",
                              f"Use one of {', '.join(sorted(layer.measures))}.")
        out.append(layer.measures[name])
    return out


def person_days(events: pl.DataFrame, layer: MetricLayer, measures: Iterable[str] = ("active", "revenue"),
                ) -> pl.DataFrame:
    """One row per person and UTC date with any event: ``person_id``, ``activity_date`` and the measures."""
    chosen = _measures(layer, measures)
    return (events.group_by("person_id", pl.col("event_date").alias("activity_date"))
            .agg(*(measure_aggregate(m, layer) for m in chosen)))


def _window(metric: Metric) -> tuple[pl.Expr, pl.Expr]:
    start = pl.col("start_at").dt.truncate("1d") if metric.calendar else pl.col("start_at")
    low = start + pl.duration(days=metric.offset_days)
    return low, low + pl.duration(days=metric.window_days)


def unit_values(units: pl.DataFrame, events: pl.DataFrame, metric: Metric, layer: MetricLayer) -> pl.DataFrame:
    """The metric of every unit over its window.

    Args:
        units: One row per unit with ``person_id`` and ``start_at`` (UTC), and any other columns
            (an arm, a day), which are kept. A person may be several units.
        events: Silver events covering the units' windows.
        metric: The unit metric (``MetricLayer.metric(name)``, maybe ``.with_window(days)``).
        layer: The metric layer.

    Returns:
        ``units`` with ``value`` (float; 1/0 for a yes/no measure) and, for a ratio metric,
        ``denominator``. Units without a qualifying event get 0.
    """
    chosen = _measures(layer, metric.measures)
    numbered = units.with_row_index(_UNIT)
    low, high = _window(metric)
    relevant = pl.any_horizontal(*(measure_condition(m, layer) for m in chosen))
    needed = {"person_id", "event_ts", "event_name", "currency"} | {m.value for m in chosen if m.value}
    window = (
        events.filter(relevant).select(sorted(needed))
        .join(numbered.select(_UNIT, "person_id", "start_at"), on="person_id", how="inner")
        .filter((pl.col("event_ts") >= low) & (pl.col("event_ts") < high))
    )
    per_unit = window.group_by(_UNIT).agg(*(measure_aggregate(m, layer).alias(f"_m_{m.name}") for m in chosen))
    joined = numbered.join(per_unit, on=_UNIT, how="left")
    filled = {m.name: _fill(m, f"_m_{m.name}") for m in chosen}
    value = filled[metric.measure].cast(pl.Float64)
    if metric.at_least is not None:
        value = (filled[metric.measure] >= metric.at_least).cast(pl.Float64)
    columns = [value.alias("value")]
    if metric.denominator is not None:
        columns.append(filled[metric.denominator].cast(pl.Float64).alias("denominator"))
    return joined.with_columns(*columns).drop(_UNIT, *(f"_m_{m.name}" for m in chosen))


def mature_units(units: pl.DataFrame, metric: Metric, as_of: datetime.datetime) -> pl.DataFrame:
    """The units whose window of ``metric`` has closed by ``as_of`` (their values are final)."""
    _, high = _window(metric)
    return units.filter(high <= pl.lit(as_of, dtype=pl.Datetime("us", "UTC")))


def metric_stats(values: pl.DataFrame, metric: Metric) -> MeanStats | RatioStats:
    """Sufficient statistics of :func:`unit_values` (one arm's rows) for the experiment engine."""
    if metric.kind == "ratio":
        return RatioStats.of(values["value"].to_numpy(), values["denominator"].to_numpy())
    return summarize(values["value"].to_numpy()) if values.height else MeanStats(0, 0.0, 0.0)


def daily_oec(events: pl.DataFrame, layer: MetricLayer) -> pl.DataFrame:
    """The OEC figures per UTC date, from the metric layer (``marts.fct_daily_oec`` without the trust
    columns and the trial conversion): ``date_day``, ``active_users``, ``revenue``,
    ``revenue_per_active_user``, ``d7_cohort_users``, ``d7_retention``."""
    days = person_days(events, layer).with_columns(anonymous=pl.col("person_id").str.starts_with("anon:"))
    if days.is_empty():
        return pl.DataFrame(schema={"date_day": pl.Date, "active_users": pl.Int64, "revenue": pl.Float64,
                                    "revenue_per_active_user": pl.Float64, "d7_cohort_users": pl.Int64,
                                    "d7_retention": pl.Float64})
    first, last = days["activity_date"].min(), days["activity_date"].max()
    assert isinstance(first, datetime.date) and isinstance(last, datetime.date)  # days is not empty
    spine = pl.DataFrame({"date_day": pl.date_range(first, last, "1d", eager=True)})
    figures = days.group_by(pl.col("activity_date").alias("date_day")).agg(
        active_users=(pl.col("active") & ~pl.col("anonymous")).sum().cast(pl.Int64),
        revenue=pl.col("revenue").sum())
    retention = layer.metric("retention_d7")
    signups = (events.filter((pl.col("event_name") == "user_signed_up") & ~pl.col("person_id").str.starts_with("anon:"))
               .group_by("person_id").agg(start_at=pl.col("event_ts").min(), signup_date=pl.col("event_date").min()))
    cohorts = (unit_values(signups, events, retention, layer)
               .with_columns(date_day=pl.col("signup_date") + pl.duration(days=retention.offset_days))
               .filter(pl.col("date_day") <= last)
               .group_by("date_day").agg(d7_cohort_users=pl.len().cast(pl.Int64), d7_retention=pl.col("value").mean()))
    return (spine.join(figures, on="date_day", how="left").join(cohorts, on="date_day", how="left")
            .with_columns(pl.col("active_users").fill_null(0), pl.col("revenue").fill_null(0.0),
                          pl.col("d7_cohort_users").fill_null(0))
            .with_columns(revenue_per_active_user=pl.when(pl.col("active_users") > 0)
                          .then(pl.col("revenue") / pl.col("active_users")))
            .select("date_day", "active_users", "revenue", "revenue_per_active_user", "d7_cohort_users",
                    "d7_retention")
            .sort("date_day"))

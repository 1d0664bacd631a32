"""Compute one day's feature values of a view from rollups: pure, no I/O, deterministic.

The store (``store.py``) reads the rollups and writes the result; this module only decides what
the values are, so it is tested directly against hand-computed cases.
"""

from __future__ import annotations

import datetime

import polars as pl

from growth_loops.features.aggregations import Aggregation
from growth_loops.features.errors import FeatureStoreError
from growth_loops.features.pit import VALID_FROM
from growth_loops.features.views import FeatureView

__all__ = ["ACTIVITY_COLUMNS", "DAY", "compute_view", "valid_from_for"]

DAY = "day"
"""Column of a view's history: the materialized day the row describes (the Delta partition)."""

ACTIVITY_COLUMNS = ("person_id", "day", "events", "consent_marketing")
"""Columns of the events rollup every view needs: who is active, and who consented to what."""

_POLARS = {"int64": pl.Int64, "float64": pl.Float64, "string": pl.String, "bool": pl.Boolean}
_ACTIVITY_KINDS = ("active_days", "days_since_last_active")
_US_PER_DAY = 86_400 * 1_000_000
_FLOAT_DECIMALS = 6


def valid_from_for(day: datetime.date) -> datetime.datetime:
    """Values computed for ``day`` hold from the end of that day (next midnight UTC): only then is
    every event of the day known, so a lookup earlier than that can never see them."""
    return datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(0), tzinfo=datetime.UTC)


def compute_view(
    view: FeatureView, day: datetime.date, *, source_rows: pl.DataFrame, activity: pl.DataFrame
) -> pl.DataFrame:
    """The view's rows for ``day``: one per person active in the last ``view.population_days`` days.

    Args:
        view: The view; every feature must declare an aggregation.
        day: The materialized day ``D``; rollup rows after it are ignored.
        source_rows: Rollup rows of the view's source (any days; those ``<= D`` are used).
        activity: Events-rollup rows with ``ACTIVITY_COLUMNS`` (for population, activity
            aggregations and consent).

    Returns:
        Columns ``view.entity``, ``valid_from``, ``day`` and the features in declaration order,
        with their declared dtypes, sorted by entity. For a view requiring marketing consent,
        people whose newest stated marketing consent is not ``true`` get a row of nulls: a
        tombstone that withdraws values served earlier.
    """
    missing = [f.name for f in view.features if f.aggregation is None]
    if missing:
        raise FeatureStoreError(
            f"feature view {view.name!r}",
            f"features without an aggregation cannot be materialized: {', '.join(missing)}",
            "Declare aggregation=… on each feature (see growth_loops.features.aggregations).",
        )
    entity = view.entity
    valid_from = valid_from_for(day)
    act = activity.lazy().filter(pl.col(DAY) <= day).rename({"person_id": entity})
    population = (
        act.filter((pl.col(DAY) >= day - datetime.timedelta(days=view.population_days - 1)) & (pl.col("events") > 0))
        .select(entity)
        .unique()
    )
    rows = (
        source_rows.lazy()
        .rename({"person_id": entity})
        .filter(pl.col(DAY) <= day)
        .join(population, on=entity, how="semi")
        .sort(entity, DAY)
    )
    activity_rows = act.join(population, on=entity, how="semi").sort(entity, DAY)

    source_aggs: list[pl.Expr] = []
    activity_aggs: list[pl.Expr] = []
    finish: list[pl.Expr] = []
    for feature in view.features:
        agg = feature.aggregation
        assert agg is not None
        target = activity_aggs if agg.kind in _ACTIVITY_KINDS else source_aggs
        exprs, final = _expressions(feature.name, agg, day, valid_from)
        target.extend(exprs)
        final = final.cast(_POLARS[feature.dtype])
        if feature.dtype == "float64":
            # Parallel float sums may differ in the last bit between runs; rounding keeps a
            # rematerialized day byte-identical (and so unchanged) when its inputs are.
            final = final.round(_FLOAT_DECIMALS)
        finish.append(final.alias(feature.name))
    if view.requires_consent == "marketing":
        activity_aggs.append(pl.col("consent_marketing").drop_nulls().last().alias("__consent"))

    frame = population
    if source_aggs:
        frame = frame.join(rows.group_by(entity).agg(source_aggs), on=entity, how="left")
    if activity_aggs:
        frame = frame.join(activity_rows.group_by(entity).agg(activity_aggs), on=entity, how="left")
    values = frame.select(entity, *finish, *(["__consent"] if view.requires_consent == "marketing" else []))
    if view.requires_consent == "marketing":
        consented = pl.col("__consent").fill_null(False)
        values = values.select(
            entity, *(pl.when(consented).then(pl.col(n)).otherwise(None).alias(n) for n in view.feature_names)
        )
    return (
        values.with_columns(
            pl.lit(valid_from, dtype=pl.Datetime("us", "UTC")).alias(VALID_FROM),
            pl.lit(day, dtype=pl.Date).alias(DAY),
        )
        .select(entity, VALID_FROM, DAY, *view.feature_names)
        .sort(entity)
        .collect()
    )


def _expressions(name: str, agg: Aggregation, day: datetime.date, valid_from: datetime.datetime
                 ) -> tuple[list[pl.Expr], pl.Expr]:
    """Group-by expressions (named ``__<name>…``) and the final expression over their results."""
    tmp = f"__{name}"
    start = agg.window_start(day)
    in_window = pl.col(DAY) >= start if start is not None else pl.lit(True)
    # Aggregation requires a column of every kind but active_days and days_since_last_active
    if agg.kind == "window_sum":
        assert agg.column is not None
        return [pl.col(agg.column).filter(in_window).sum().alias(tmp)], pl.col(tmp).fill_null(0)
    if agg.kind == "active_days":
        return [(pl.col("events") > 0).filter(in_window).sum().alias(tmp)], pl.col(tmp).fill_null(0)
    if agg.kind == "days_since_last_active":
        last = pl.col(DAY).filter(pl.col("events") > 0).max().alias(tmp)
        return [last], (pl.lit(day, dtype=pl.Date) - pl.col(tmp)).dt.total_days()
    if agg.kind == "latest":
        assert agg.column is not None
        final = pl.col(tmp) if agg.default is None else pl.col(tmp).fill_null(agg.default)
        return [pl.col(agg.column).drop_nulls().last().alias(tmp)], final
    if agg.kind == "distinct_count":
        assert agg.column is not None
        return [pl.col(agg.column).explode().drop_nulls().n_unique().alias(tmp)], pl.col(tmp).fill_null(0)
    if agg.kind == "window_ratio":
        assert agg.column is not None and agg.denominator is not None
        num, den = f"{tmp}_num", f"{tmp}_den"
        exprs = [pl.col(agg.column).filter(in_window).sum().alias(num),
                 pl.col(agg.denominator).filter(in_window).sum().alias(den)]
        return exprs, pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(None)
    if agg.kind == "days_left":
        state_col, state_value = agg.state  # type: ignore[misc]
        assert agg.column is not None
        until, state = f"{tmp}_until", f"{tmp}_state"
        exprs = [pl.col(agg.column).drop_nulls().last().alias(until),
                 pl.col(state_col).drop_nulls().last().alias(state)]
        micros = (pl.col(until) - pl.lit(valid_from, dtype=pl.Datetime("us", "UTC"))).dt.total_microseconds()
        left = (micros.cast(pl.Float64) / _US_PER_DAY).ceil().clip(lower_bound=0)
        return exprs, pl.when((pl.col(state) == state_value) & pl.col(until).is_not_null()).then(left).otherwise(None)
    raise FeatureStoreError("aggregation", f"kind {agg.kind!r} is not implemented", "Use a documented kind.")

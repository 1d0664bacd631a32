"""What loops read besides features: silver events of a window, exposures, and per-unit outcomes."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import polars as pl

from growth_loops.features.rollups import NON_ACTIVITY_EVENTS, REPORTING_CURRENCY
from lake import delta_io
from lake.paths import LakePaths
from lake.schemas import SILVER_EVENTS

__all__ = ["exposures", "read_events", "unit_outcomes"]

_COLUMNS = ("person_id", "event_name", "event_ts", "event_date", "revenue", "currency", "onboarding_step", "properties",
            "device_type")


def read_events(paths: LakePaths, start: datetime.date, end: datetime.date,
                names: Sequence[str] | None = None) -> pl.DataFrame:
    """Silver events of ``start .. end`` (event dates, inclusive), optionally only some event names."""
    days = [start + datetime.timedelta(days=i) for i in range((end - start).days + 1)]
    if not days:
        return pl.from_arrow(SILVER_EVENTS.empty_table().select(list(_COLUMNS)))  # type: ignore[return-value]
    frame = pl.from_arrow(delta_io.read(paths.silver_events, SILVER_EVENTS, columns=list(_COLUMNS),
                                        partitions=[("event_date", "in", days)]))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.filter(pl.col("person_id").is_not_null())
    return frame if names is None else frame.filter(pl.col("event_name").is_in(list(names)))


def exposures(events: pl.DataFrame, feature_key: str) -> pl.DataFrame:
    """First exposure per person to an experiment rule of ``feature_key`` (``experiment_viewed``).

    Returns ``person_id``, ``experiment_id``, ``variation_id``, ``exposed_at`` and the exposure's
    ``device_type`` (one row per person and experiment: the first exposure decides the arm, as in
    GrowthBook's analysis).
    """
    viewed = events.filter(pl.col("event_name") == "experiment_viewed").with_columns(
        pl.col("properties").str.json_path_match("$.feature_key").alias("feature_key"),
        pl.col("properties").str.json_path_match("$.experiment_id").alias("experiment_id"),
        pl.col("properties").str.json_path_match("$.variation_id").alias("variation_id"),
    )
    return (
        viewed.filter(pl.col("feature_key") == feature_key)
        .sort("event_ts")
        .group_by("person_id", "experiment_id", maintain_order=True)
        .agg(pl.col("variation_id").first(), pl.col("event_ts").first().alias("exposed_at"),
             pl.col("device_type").first())
        .select("person_id", "experiment_id", "variation_id", "exposed_at", "device_type")
    )


def unit_outcomes(units: pl.DataFrame, events: pl.DataFrame, *, days: int) -> pl.DataFrame:
    """Outcomes of each unit in the ``days`` after its start (``person_id``, ``start_at`` columns).

    Adds ``converted`` (a subscription started), ``revenue`` (payments in the reporting
    currency), ``onboarding_steps`` (distinct steps completed), ``active_days`` (dates with an
    activity event) and ``cancelled`` (a subscription cancelled); units without events get 0 /
    false. An event exactly at ``start_at`` counts (a sign-up's own onboarding, a conversion at
    the paywall it was exposed to).
    """
    window = (
        events.join(units.select("person_id", "start_at"), on="person_id", how="inner")
        .filter((pl.col("event_ts") >= pl.col("start_at"))
                & (pl.col("event_ts") < pl.col("start_at") + pl.duration(days=days)))
    )
    name = pl.col("event_name")
    per_unit = window.group_by("person_id").agg(
        (name == "subscription_started").any().alias("converted"),
        pl.col("revenue").filter((name == "payment_succeeded") & (pl.col("currency") == REPORTING_CURRENCY))
        .sum().alias("revenue"),
        pl.col("onboarding_step").drop_nulls().n_unique().alias("onboarding_steps"),
        pl.col("event_date").filter(~name.is_in(NON_ACTIVITY_EVENTS)).n_unique().alias("active_days"),
        (name == "subscription_cancelled").any().alias("cancelled"),
    )
    return units.join(per_unit, on="person_id", how="left").with_columns(
        pl.col("converted").fill_null(False), pl.col("revenue").fill_null(0.0),
        pl.col("onboarding_steps").fill_null(0).cast(pl.Int64), pl.col("active_days").fill_null(0).cast(pl.Int64),
        pl.col("cancelled").fill_null(False),
    )

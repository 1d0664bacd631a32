"""What loops read besides features: silver events of a window and the product's exposures.

Per-unit outcomes come from the metric layer (``growth_loops.metrics``), the definitions the marts
share.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import polars as pl

from lake import delta_io
from lake.paths import LakePaths
from lake.schemas import SILVER_EVENTS

__all__ = ["exposures", "read_events"]

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

"""Daily per-person rollups of the feature sources: the only place the feature store reads silver.

Materializing features for a day never rescans the event history. Each source table is reduced,
one day at a time, to one row per (person, day) of a few sums and last values; windows and
lifetime values are then aggregations over those rows (``aggregations.py``). A day's rollup is
rebuilt only when the silver files of that day changed (see ``store.py``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

__all__ = [
    "EVENTS_ROLLUP",
    "NON_ACTIVITY_EVENTS",
    "REPORTING_CURRENCY",
    "ROLLUP_SOURCES",
    "SESSIONS_ROLLUP",
    "RollupSource",
    "events_rollup",
    "sessions_rollup",
]

_TS = pa.timestamp("us", tz="UTC")

# Events a person receives or that bill them rather than things they do; the same list as the
# dbt var ``non_activity_events`` (a test keeps the two equal).
NON_ACTIVITY_EVENTS: tuple[str, ...] = (
    "subscription_started",
    "subscription_cancelled",
    "payment_succeeded",
    "payment_failed",
    "email_opened",
    "email_clicked",
    "experiment_viewed",
    "user_identified",  # Segment/RudderStack identify, alias and group calls: tracking, not the person acting
    "user_aliased",
    "user_grouped",
)
# Revenue is summed in one currency, as in the marts (dbt var ``reporting_currency``).
REPORTING_CURRENCY = "USD"

EVENTS_ROLLUP = pa.schema(
    [
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("events", pa.int64(), nullable=False),  # activity events (not NON_ACTIVITY_EVENTS)
        pa.field("revenue", pa.float64(), nullable=False),  # payment_succeeded amounts in REPORTING_CURRENCY
        pa.field("onboarding_steps", pa.list_(pa.string())),  # distinct steps completed that day, sorted
        pa.field("plan_state", pa.string()),  # last of the day: trial | pro | team | free (cancelled)
        pa.field("trial_end_ts", _TS),  # last trial_started of the day: its start + trial_days
        pa.field("consent_marketing", pa.bool_()),  # last stated marketing consent of the day
        pa.field("emails_opened", pa.int64(), nullable=False),
        pa.field("emails_clicked", pa.int64(), nullable=False),
        pa.field("utm_source", pa.string()),  # last of the day
    ]
)

SESSIONS_ROLLUP = pa.schema(
    [
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("day", pa.date32(), nullable=False),
        pa.field("sessions", pa.int64(), nullable=False),  # sessions that started that day
        pa.field("session_seconds", pa.float64(), nullable=False),
        pa.field("bounces", pa.int64(), nullable=False),
    ]
)

_EVENTS_COLUMNS = (
    "person_id", "event_name", "event_ts", "revenue", "currency", "plan", "onboarding_step",
    "consent_marketing", "utm_source", "properties",
)
_SESSIONS_COLUMNS = ("person_id", "session_start", "duration_s", "is_bounce")


def _last_non_null(column: str) -> pl.Expr:
    return pl.col(column).drop_nulls().last()


def events_rollup(events: pl.DataFrame, day: datetime.date) -> pl.DataFrame:
    """One row per person with any event on ``day`` (silver events of that ``event_date``).

    Args:
        events: Silver events of one ``event_date`` (at least ``_EVENTS_COLUMNS``).
        day: That date; stored as the rollup's ``day``.
    """
    name = pl.col("event_name")
    plan_state = (
        pl.when(name == "trial_started").then(pl.lit("trial"))
        .when(name == "subscription_started").then(pl.col("plan"))
        .when(name == "subscription_cancelled").then(pl.lit("free"))
        .otherwise(None)
    )
    trial_days = pl.col("properties").str.json_path_match("$.trial_days").cast(pl.Int64, strict=False)
    trial_end = pl.when(name == "trial_started").then(
        pl.col("event_ts") + pl.duration(days=trial_days)
    ).otherwise(None)
    frame = (
        events.lazy()
        .filter(pl.col("person_id").is_not_null())
        .sort("event_ts", "event_name")
        .with_columns(_plan_state=plan_state, _trial_end=trial_end)
        .group_by("person_id")
        .agg(
            events=(~name.is_in(NON_ACTIVITY_EVENTS)).sum().cast(pl.Int64),
            revenue=pl.col("revenue")
            .filter((name == "payment_succeeded") & (pl.col("currency") == REPORTING_CURRENCY))
            .sum()
            .round(6),
            onboarding_steps=pl.col("onboarding_step").drop_nulls().unique().sort(),
            plan_state=_last_non_null("_plan_state"),
            trial_end_ts=_last_non_null("_trial_end"),
            consent_marketing=_last_non_null("consent_marketing"),
            emails_opened=(name == "email_opened").sum().cast(pl.Int64),
            emails_clicked=(name == "email_clicked").sum().cast(pl.Int64),
            utm_source=_last_non_null("utm_source"),
        )
        .with_columns(day=pl.lit(day, dtype=pl.Date))
        .sort("person_id")
        .collect()
    )
    return _conform(frame, EVENTS_ROLLUP)


def sessions_rollup(sessions: pl.DataFrame, day: datetime.date) -> pl.DataFrame:
    """One row per person with a session starting on ``day`` (silver sessions of that ``session_date``)."""
    frame = (
        sessions.lazy()
        .group_by("person_id")
        .agg(
            sessions=pl.len().cast(pl.Int64),
            session_seconds=pl.col("duration_s").sum().round(6),
            bounces=pl.col("is_bounce").sum().cast(pl.Int64),
        )
        .with_columns(day=pl.lit(day, dtype=pl.Date))
        .sort("person_id")
        .collect()
    )
    return _conform(frame, SESSIONS_ROLLUP)


def _conform(frame: pl.DataFrame, schema: pa.Schema) -> pl.DataFrame:
    return pl.from_arrow(frame.select(schema.names).to_arrow().cast(schema))  # type: ignore[return-value]


@dataclass(frozen=True)
class RollupSource:
    """A silver table the feature store reads, and how one of its days becomes a rollup.

    Attributes:
        source: The name feature views use in ``FeatureView.source``.
        name: Short name, used for the rollup's table (``features/_rollup_<name>``).
        schema: The rollup's Arrow schema.
        date_column: The silver table's date partition column.
        columns: Silver columns the rollup reads.
        build: ``(silver rows of one day, the day) -> rollup rows``.
        table: Which silver table (attribute of ``LakePaths``).
    """

    source: str
    name: str
    schema: pa.Schema
    date_column: str
    columns: tuple[str, ...]
    build: Callable[[pl.DataFrame, datetime.date], pl.DataFrame]
    table: str


ROLLUP_SOURCES: dict[str, RollupSource] = {
    "silver.events": RollupSource(
        "silver.events", "events", EVENTS_ROLLUP, "event_date", _EVENTS_COLUMNS, events_rollup, "silver_events"
    ),
    "silver.sessions": RollupSource(
        "silver.sessions", "sessions", SESSIONS_ROLLUP, "session_date", _SESSIONS_COLUMNS, sessions_rollup,
        "silver_sessions",
    ),
}

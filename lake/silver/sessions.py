"""Sessionization: 30 minutes of inactivity end a person's session (pure frame logic).

Incremental rule (why recomputing a few sessions is exact): a person's sessions are separated by
gaps of more than ``gap``. When events of that person appear or disappear at some instants (the
"dirty points"), only the sessions lying within ``gap`` of a dirty point can change; every other
session stays more than ``gap`` away from all changed events and is unchanged. So the build
deletes those affected sessions and re-sessionizes the person's events inside them plus the new
events — the result equals a full recomputation.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lake.schemas import SILVER_SESSIONS

__all__ = ["SESSION_GAP", "SESSION_INPUT", "session_id", "sessionize", "affected_sessions", "event_windows",
           "events_in_windows", "window_dates"]

SESSION_GAP = timedelta(minutes=30)
"""A gap longer than this (strictly) between two events of a person starts a new session."""

SESSION_INPUT = ["person_id", "event_ts", "event_id", "event_name", "device_type"]
"""The silver/events columns sessionization reads."""


def session_id(person_id: str, first_event_id: str) -> str:
    """Deterministic session id: 128-bit hex of sha256(person_id, first event_id)."""
    return hashlib.sha256(f"{person_id}\x1f{first_event_id}".encode()).hexdigest()[:32]


def sessionize(events: pl.DataFrame, *, gap: timedelta = SESSION_GAP) -> pl.DataFrame:
    """Group each person's events into sessions.

    Events are ordered by (event_ts, event_id); a new session starts at a person's first event and
    after every gap longer than ``gap``. Events without a person_id belong to no session.

    Args:
        events: frame with the ``SESSION_INPUT`` columns.
        gap: inactivity that ends a session.

    Returns:
        Frame with exactly the ``SILVER_SESSIONS`` columns, sorted by (session_date, person_id,
        session_start).
    """
    ev = events.select(SESSION_INPUT).filter(pl.col("person_id").is_not_null()).unique("event_id")
    ev = ev.sort(["person_id", "event_ts", "event_id"])
    starts = (pl.col("event_ts").diff().over("person_id") > gap).fill_null(True)
    grouped = (
        ev.with_columns(starts.cum_sum().alias("_session"))
        .group_by("_session", maintain_order=True)
        .agg(
            pl.col("person_id").first(),
            pl.col("event_ts").first().alias("session_start"),
            pl.col("event_ts").last().alias("session_end"),
            pl.len().cast(pl.Int64).alias("event_count"),
            pl.col("event_id").first().alias("_first_event_id"),
            pl.col("event_name").first().alias("first_event_name"),
            pl.col("device_type").first(),
        )
    )
    ids = [session_id(p, e)
           for p, e in zip(grouped["person_id"].to_list(), grouped["_first_event_id"].to_list(), strict=True)]
    micros = (grouped["session_end"] - grouped["session_start"]).dt.total_microseconds().to_arrow()
    # Plain IEEE division in Arrow: polars may divide by a scalar through its reciprocal, which
    # rounds differently with the batch size — an incremental build must match a rebuild bit for bit.
    seconds = pc.divide(micros.cast(pa.float64()), pa.scalar(1_000_000.0))
    out = grouped.with_columns(
        pl.Series("session_id", ids, dtype=pl.String),
        pl.col("session_start").dt.date().alias("session_date"),
        pl.Series("duration_s", seconds, dtype=pl.Float64),
        (pl.col("event_count") == 1).alias("is_bounce"),
    )
    return out.select(SILVER_SESSIONS.names).sort(["session_date", "person_id", "session_start"])


def affected_sessions(sessions: pl.DataFrame, dirty: pl.DataFrame, *, gap: timedelta = SESSION_GAP) -> pl.DataFrame:
    """The sessions a change at the dirty points can alter.

    A point ``t`` affects a session when ``start - gap <= t <= end + gap`` (same person). A
    person's sessions are disjoint and more than ``gap`` apart, so at most two sessions qualify:
    the last one whose widened start is ``<= t`` and the first one whose widened end is
    ``>= t`` — two as-of joins, O(n log n) however many points and sessions a person has.

    Args:
        sessions: existing sessions (at least session_id, person_id, session_start, session_end).
        dirty: (person_id, event_ts) instants where a person gained or lost an event.
        gap: the sessionization gap.

    Returns:
        The rows of ``sessions`` lying within ``gap`` of a dirty point of the same person.
    """
    if sessions.height == 0 or dirty.height == 0:
        return sessions.clear()
    widened = sessions.select("session_id", "person_id", (pl.col("session_start") - gap).alias("_lo"),
                              (pl.col("session_end") + gap).alias("_hi"))
    points = dirty.select("person_id", "event_ts").sort("event_ts")
    t = pl.col("event_ts")
    before = points.join_asof(widened.sort("_lo"), left_on="event_ts", right_on="_lo", by="person_id",
                              strategy="backward", check_sortedness=False).filter(t <= pl.col("_hi"))
    after = points.join_asof(widened.sort("_hi"), left_on="event_ts", right_on="_hi", by="person_id",
                             strategy="forward", check_sortedness=False).filter(t >= pl.col("_lo"))
    hit = pl.concat([before["session_id"], after["session_id"]]).unique()
    return sessions.filter(pl.col("session_id").is_in(hit.implode()))


def event_windows(affected: pl.DataFrame, dirty: pl.DataFrame) -> pl.DataFrame:
    """Per person, the disjoint time ranges whose events must be re-sessionized: the affected
    sessions' spans and the dirty instants, overlapping ones merged. Columns: person_id, lo, hi
    (inclusive)."""
    spans = affected.select("person_id", pl.col("session_start").alias("lo"), pl.col("session_end").alias("hi"))
    points = dirty.select("person_id", pl.col("event_ts").alias("lo"), pl.col("event_ts").alias("hi"))
    ranges = pl.concat([spans, points]).sort(["person_id", "lo", "hi"])
    reach = pl.col("hi").cum_max().shift(1).over("person_id")  # furthest end so far, same person
    starts = (reach.is_null() | (pl.col("lo") > reach)).cum_sum()
    return (ranges.with_columns(starts.alias("_range")).group_by("_range", maintain_order=True)
            .agg(pl.col("person_id").first(), pl.col("lo").min(), pl.col("hi").max()).drop("_range"))


def window_dates(windows: pl.DataFrame) -> list[date]:
    """Every UTC date some window touches (the event_date partitions to read)."""
    if windows.height == 0:
        return []
    days = windows.select(pl.date_ranges(pl.col("lo").dt.date(), pl.col("hi").dt.date()).alias("d")).explode("d")
    return days["d"].unique().sort().to_list()


def events_in_windows(events: pl.DataFrame, windows: pl.DataFrame) -> pl.DataFrame:
    """The events of ``events`` falling inside a window of their own person (windows disjoint
    per person, as :func:`event_windows` returns them)."""
    if events.height == 0 or windows.height == 0:
        return events.clear()
    matched = events.sort("event_ts").join_asof(windows.sort("lo"), left_on="event_ts", right_on="lo", by="person_id",
                                                strategy="backward", check_sortedness=False)
    inside = matched.filter(pl.col("hi").is_not_null() & (pl.col("event_ts") <= pl.col("hi")))
    return inside.select(events.columns).unique("event_id")

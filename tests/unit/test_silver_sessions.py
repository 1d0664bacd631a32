"""Sessionization rules, and the incremental window that makes partial recomputation exact."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from lake.silver import session_id, sessionize
from lake.silver.sessions import affected_sessions, event_windows, events_in_windows

T0 = datetime(2026, 11, 2, 23, 0, tzinfo=UTC)


def events(offsets_s: list[float], person: str = "u1", prefix: str = "e") -> pl.DataFrame:
    return pl.DataFrame({
        "person_id": [person] * len(offsets_s),
        "event_ts": [T0 + timedelta(seconds=s) for s in offsets_s],
        "event_id": [f"{prefix}{i:03d}" for i in range(len(offsets_s))],
        "event_name": ["page_viewed"] * len(offsets_s),
        "device_type": ["desktop"] + ["mobile"] * (len(offsets_s) - 1),
    }, schema_overrides={"event_ts": pl.Datetime("us", "UTC")})


def test_a_gap_of_exactly_30_minutes_continues_and_one_microsecond_more_splits():
    s = sessionize(events([0, 1800, 3600.000001, 3700]))
    assert s["event_count"].to_list() == [2, 2]
    assert s["session_start"].to_list() == [T0, T0 + timedelta(seconds=3600.000001)]
    assert s["duration_s"].to_list() == [1800.0, pytest.approx(99.999999)]


def test_session_spans_midnight_and_belongs_to_its_start_date():
    s = sessionize(events([3000, 3500, 4000]))  # 23:50 -> 00:06:40 next day
    assert s.height == 1
    row = s.to_dicts()[0]
    assert row["session_date"] == T0.date() and row["session_end"].date() == T0.date() + timedelta(days=1)
    assert (row["event_count"], row["is_bounce"]) == (3, False)
    assert (row["first_event_name"], row["device_type"]) == ("page_viewed", "desktop")


def test_session_ids_are_deterministic_and_persons_do_not_mix():
    both = pl.concat([events([0, 60]), events([30], person="anon:d1", prefix="f")])
    s = sessionize(both)
    assert s.height == 2
    by_person = {r["person_id"]: r for r in s.to_dicts()}
    assert by_person["u1"]["session_id"] == session_id("u1", "e000")
    assert by_person["anon:d1"]["is_bounce"] is True
    assert sessionize(both.reverse())["session_id"].sort().to_list() == s["session_id"].sort().to_list()


def test_events_without_a_person_form_no_session():
    ev = events([0]).with_columns(pl.lit(None, pl.String).alias("person_id"))
    assert sessionize(ev).height == 0


@pytest.mark.parametrize("seed", range(20))
def test_recomputing_only_affected_sessions_equals_a_full_recomputation(seed):
    rng = random.Random(seed)
    offsets = sorted(rng.uniform(0, 6 * 3600) for _ in range(40))
    all_events = events(offsets)
    new_idx = set(rng.sample(range(40), 8))
    old = all_events.filter(~pl.int_range(pl.len()).is_in(list(new_idx)))
    new = all_events.filter(pl.int_range(pl.len()).is_in(list(new_idx)))
    before = sessionize(old)
    dirty = new.select("person_id", "event_ts")
    hit = affected_sessions(before, dirty)
    fresh = sessionize(events_in_windows(all_events, event_windows(hit, dirty)))
    merged = pl.concat([before.filter(~pl.col("session_id").is_in(hit["session_id"].implode())), fresh])
    assert merged.sort("session_id").equals(sessionize(all_events).sort("session_id"))


@pytest.mark.parametrize("seed", range(10))
def test_events_leaving_a_person_split_or_remove_only_the_sessions_around_them(seed):
    rng = random.Random(seed)
    before_events = events(sorted(rng.uniform(0, 4 * 3600) for _ in range(30)))
    gone = before_events.sample(6, seed=seed)  # re-attributed to another person
    after_events = before_events.join(gone, on="event_id", how="anti")
    before = sessionize(before_events)
    dirty = gone.select("person_id", "event_ts")
    hit = affected_sessions(before, dirty)
    fresh = sessionize(events_in_windows(after_events, event_windows(hit, dirty)))
    merged = pl.concat([before.filter(~pl.col("session_id").is_in(hit["session_id"].implode())), fresh])
    assert merged.sort("session_id").equals(sessionize(after_events).sort("session_id"))


def test_a_late_event_between_two_sessions_affects_both_and_merges_them():
    before = sessionize(events([0, 600, 3000, 3600]))  # 23:00-23:10 and 23:50-00:00, 40 min apart
    assert before["event_count"].to_list() == [2, 2]
    late = events([1800], prefix="late")  # 23:30: within 30 min of both
    hit = affected_sessions(before, late.select("person_id", "event_ts"))
    assert hit.height == 2
    windows = event_windows(hit, late.select("person_id", "event_ts"))
    spans = windows.sort("lo").rows()
    assert all(a[2] < b[1] for a, b in zip(spans, spans[1:], strict=False)), "windows of a person are disjoint"
    everything = pl.concat([events([0, 600, 3000, 3600]), late])
    assert sessionize(events_in_windows(everything, windows))["event_count"].to_list() == [5]

"""The feature store on real Delta tables and a real SQLite online store, fed by silver written here."""

from __future__ import annotations

import datetime as dt
import json
import random

import polars as pl
import pytest

from growth_loops.features import FeatureStore, get_view
from growth_loops.features.compute import valid_from_for
from lake import delta_io
from tests.feature_helpers import (
    at,
    session,
    silver_event,
    synthetic_days,
    write_events,
    write_sessions,
)

START = dt.date(2025, 1, 1)


def _day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def _versions(store: FeatureStore) -> dict[str, int | None]:
    uris = [store.paths.feature_view(v.name) for v in store.views]
    uris += [store.paths.feature_rollup("events"), store.paths.feature_rollup("sessions"),
             store.paths.feature_rollup_state]
    return {u: delta_io.version(u) for u in uris}


def _online_snapshot(store: FeatureStore, ids: list[str]) -> pl.DataFrame:
    return store.get_online_features(ids, now=at(_day(40)) - dt.timedelta(days=30))


def test_materializing_the_same_day_twice_changes_nothing(paths):
    synthetic_days(paths, START, 5, people=120, seed=1)
    store = FeatureStore(paths)
    first = store.materialize(_day(4))
    assert {m.status for m in first} == {"published"}
    assert all(m.rows > 30 for m in first)
    before = _versions(store)
    ids = store.history("user_features")["person_id"].to_list()
    online_before = store.get_online_features(ids, now=at(_day(5)))

    again = store.materialize(_day(4))

    assert [m.status for m in again] == ["unchanged"] * 3
    assert _versions(store) == before  # no commit at all: not the views, not the rollups, not their state
    assert store.get_online_features(ids, now=at(_day(5))).equals(online_before)
    log = store.materializations()
    assert log.height == 6 and log.filter(pl.col("status") == "unchanged").height == 3


def test_a_nightly_run_reads_only_the_silver_days_that_changed(paths):
    synthetic_days(paths, START, 6, people=60, seed=2)
    store = FeatureStore(paths)
    assert store.refresh_rollups(through=_day(4)) == {"silver.events": [_day(i) for i in range(5)],
                                                     "silver.sessions": [_day(i) for i in range(5)]}
    # Nothing changed: nothing is re-read. Day 5 exists in silver but is after the day asked for.
    assert store.refresh_rollups(through=_day(4)) == {"silver.events": [], "silver.sessions": []}
    assert store.refresh_rollups(through=_day(5)) == {"silver.events": [_day(5)], "silver.sessions": [_day(5)]}
    # A late event for day 2 (identity stitching rewrites old days the same way) rebuilds that day only.
    write_events(paths, [silver_event("usr_late", "page_viewed", at(_day(2), 9))])
    assert store.refresh_rollups(through=_day(5)) == {"silver.events": [_day(2)], "silver.sessions": []}
    out = store.materialize(_day(5))
    features = store.history("user_features", entity_ids=["usr_late"], days=[_day(5)])
    assert features.select("events_7d", "days_since_last_seen").row(0) == (1, 3)
    assert out[0].status == "published"


def _brute_force(events: list[dict], sessions: list[dict], person: str, ts: dt.datetime, last_day: dt.date,
                 ttl: dt.timedelta) -> dict | None:
    """Feature values at ``ts`` straight from the silver rows: the latest complete day not after
    ``last_day``, expired after ``ttl``, and only for people active in the 28 days before."""
    day = min(ts.date() - dt.timedelta(days=1), last_day)
    if day < START or ts - valid_from_for(day) > ttl:
        return None
    mine = [e for e in events if e["person_id"] == person and e["event_date"] <= day]
    billing = ("payment_succeeded", "subscription_started")  # not activity (NON_ACTIVITY_EVENTS)
    active = sorted({e["event_date"] for e in mine if e["event_name"] not in billing})
    if not active or (day - active[-1]).days > 27:
        return None

    def window(days: int, rows, key) -> list:
        return [r for r in rows if (day - r[key]).days < days]

    plans = [e for e in sorted(mine, key=lambda e: e["event_ts"])
             if e["event_name"] in ("trial_started", "subscription_started")]
    return {
        "events_7d": sum(1 for e in window(7, mine, "event_date") if e["event_name"] not in billing),
        "events_28d": sum(1 for e in window(28, mine, "event_date") if e["event_name"] not in billing),
        "days_since_last_seen": (day - active[-1]).days,
        "revenue_28d": round(sum(e["revenue"] or 0 for e in window(28, mine, "event_date")), 6),
        "plan": ("trial" if plans[-1]["event_name"] == "trial_started" else plans[-1]["plan"]) if plans else "free",
        "sessions_28d": sum(1 for s in window(28, [s for s in sessions if s["person_id"] == person
                                                    and s["session_date"] <= day], "session_date")),
    }


def test_historical_features_equal_a_brute_force_recomputation_from_silver(paths):
    rng = random.Random(7)
    people = [f"usr_{i:03d}" for i in range(25)]
    events, sessions = [], []
    for i in range(12):
        day = _day(i)
        for person in people:
            if rng.random() < 0.45:
                t = at(day, rng.randrange(24), rng.randrange(60))
                n = rng.randrange(1, 6)
                events += [silver_event(person, "page_viewed", t + dt.timedelta(seconds=k)) for k in range(n)]
                sessions.append(session(person, t, n, 10.0 * n))
                if rng.random() < 0.15:
                    plan = rng.choice(["pro", "team"])
                    name = rng.choice(["trial_started", "subscription_started"])
                    events.append(silver_event(person, name, t + dt.timedelta(minutes=5), plan=plan,
                                               properties={"plan": plan, "trial_days": 14}))
                if rng.random() < 0.1:
                    events.append(silver_event(person, "payment_succeeded", t + dt.timedelta(minutes=9),
                                               revenue=round(rng.uniform(5, 50), 2), currency="USD"))
    for i in range(12):  # one commit per day, as the hourly silver build makes
        write_events(paths, [e for e in events if e["event_date"] == _day(i)])
        write_sessions(paths, [s for s in sessions if s["session_date"] == _day(i)])
    store = FeatureStore(paths)
    last_day = _day(9)  # days 10 and 11 are in silver but not materialized: never visible
    for i in range(10):
        store.materialize(_day(i))

    lookups = []
    for _ in range(400):
        person = rng.choice(people + ["usr_unknown"])
        moment = at(_day(rng.randrange(0, 14)), rng.randrange(24), rng.randrange(60))
        lookups.append((person, moment))
    # Exactly at a day's valid_from (ties), one microsecond before it, and exactly at the TTL edge.
    lookups += [("usr_001", valid_from_for(_day(4))),
                ("usr_001", valid_from_for(_day(4)) - dt.timedelta(microseconds=1)),
                ("usr_002", valid_from_for(last_day) + dt.timedelta(days=2)),
                ("usr_002", valid_from_for(last_day) + dt.timedelta(days=2, microseconds=1))]
    entity_df = pl.DataFrame({"person_id": [p for p, _ in lookups], "event_timestamp": [t for _, t in lookups]},
                             schema={"person_id": pl.String, "event_timestamp": pl.Datetime("us", "UTC")})
    got = store.get_historical_features(entity_df, ["user_features", "user_sessions"])

    ttl = get_view("user_features").ttl
    served = 0
    for row in got.iter_rows(named=True):
        expected = _brute_force(events, sessions, row["person_id"], row["event_timestamp"], last_day, ttl)
        if expected is None:
            assert row["events_28d"] is None and row["sessions_28d"] is None, row
        else:
            served += 1
            assert {k: row[k] for k in expected} == expected, (row["person_id"], row["event_timestamp"])
    assert 150 < served < len(lookups) - 50  # both branches are exercised
    assert got.row(400, named=True)["events_28d"] is not None  # served from the very microsecond it is valid


def test_online_values_expire_after_the_ttl(paths):
    synthetic_days(paths, START, 3, people=40, seed=3)
    store = FeatureStore(paths)
    store.materialize(_day(2))
    ids = store.history("user_features")["person_id"].head(5).to_list()
    ttl = get_view("user_features").ttl
    edge = valid_from_for(_day(2)) + ttl
    fresh = store.get_online_features(ids, ["user_features"], now=edge)
    stale = store.get_online_features(ids, ["user_features"], now=edge + dt.timedelta(microseconds=1))
    assert fresh["events_28d"].null_count() == 0
    assert stale["events_28d"].null_count() == 5


def test_marketing_features_only_for_people_with_marketing_consent(paths):
    events = []
    for i in range(6):
        t = at(_day(i))
        events += [silver_event("usr_yes", "email_opened", t, consent_marketing=True),
                   silver_event("usr_yes", "page_viewed", t, consent_marketing=True, utm_source="newsletter"),
                   silver_event("usr_never", "email_opened", t),
                   silver_event("usr_never", "page_viewed", t, utm_source="google"),
                   silver_event("usr_no", "page_viewed", t, consent_marketing=False, utm_source="bing")]
        # usr_revokes consents on day 0, opens emails daily, and revokes on day 3.
        events += [silver_event("usr_revokes", "email_opened", t, consent_marketing=i < 3),
                   silver_event("usr_revokes", "page_viewed", t, consent_marketing=i < 3, utm_source="ads")]
    write_events(paths, events)
    store = FeatureStore(paths)
    for i in range(6):
        store.materialize(_day(i))
    history = store.history("user_marketing")
    people = set(history["person_id"])
    assert people == {"usr_yes", "usr_never", "usr_no", "usr_revokes"}
    values = ["emails_opened_28d", "emails_clicked_28d", "last_utm_source"]
    withheld = history.filter(pl.col("person_id").is_in(["usr_never", "usr_no"]))
    assert withheld.select(pl.all_horizontal(pl.col(values).is_null()).all()).item()  # never stored, not only hidden
    yes = history.filter(pl.col("person_id") == "usr_yes").sort("day")
    assert yes["emails_opened_28d"].to_list() == [1, 2, 3, 4, 5, 6]
    assert yes["last_utm_source"].to_list() == ["newsletter"] * 6
    revokes = history.filter(pl.col("person_id") == "usr_revokes").sort("day")
    assert revokes["emails_opened_28d"].to_list() == [1, 2, 3, None, None, None]
    # The revocation withdraws what was served: online and point-in-time.
    online = store.get_online_features(["usr_revokes", "usr_yes"], ["user_marketing"], now=at(_day(6)))
    assert online["emails_opened_28d"].to_list() == [None, 6]
    lookups = pl.DataFrame({"person_id": ["usr_revokes"] * 2, "event_timestamp": [at(_day(3), 6), at(_day(4), 6)]},
                           schema={"person_id": pl.String, "event_timestamp": pl.Datetime("us", "UTC")})
    pit = store.get_historical_features(lookups, ["user_marketing"])
    assert pit["emails_opened_28d"].to_list() == [3, None]
    # Activity features need only analytics consent, which every silver event has.
    activity = store.history("user_features", entity_ids=["usr_no"], days=[_day(5)])
    assert activity["events_28d"].to_list() == [6]


def test_a_shifted_distribution_is_held_and_nothing_is_published(paths):
    synthetic_days(paths, START, 30, people=300, seed=11)
    store = FeatureStore(paths)
    first, second = store.materialize(_day(27)), store.materialize(_day(28))
    assert first[0].drift is None and "first materialization" in first[0].drift_note
    assert all(m.status == "published" and m.drift is not None and m.drift.passed for m in second), \
        [m.summary() for m in second]
    # Day 29: the same people, but a broken client sends every page view 15 times.
    synthetic_days(paths, _day(29), 1, people=300, seed=12, events_per_day=60)
    online_before = store.online.latest_valid_from(get_view("user_features"))
    version_before = delta_io.version(paths.feature_view("user_features"))

    held = {m.view: m for m in store.materialize(_day(29))}

    assert held["user_features"].status == "held"
    assert "events_7d" in held["user_features"].drift.drifted
    assert held["user_features"].gx_passed  # the values are plausible; only their distribution moved
    assert _day(29) not in store.published_days("user_features")
    assert delta_io.version(paths.feature_view("user_features")) == version_before
    assert store.online.latest_valid_from(get_view("user_features")) == online_before
    assert pl.read_parquet(held["user_features"].held_path).height == held["user_features"].rows
    log = store.materializations("user_features")
    assert log.row(0, named=True)["status"] == "held" and log.row(0, named=True)["drift_passed"] is False

    # A reviewed, real change is published on request, and the log says so.
    accepted = {m.view: m for m in store.materialize(_day(29), accept_drift=True)}
    assert accepted["user_features"].status == "published" and accepted["user_features"].drift_accepted
    assert _day(29) in store.published_days("user_features")
    assert store.materializations("user_features").row(0, named=True)["drift_accepted"] is True


def test_values_failing_the_expectations_are_never_published(paths):
    synthetic_days(paths, START, 3, people=50, seed=5)
    # A refund booked as a negative payment: revenue_28d < 0 breaks the suite's range.
    write_events(paths, [silver_event("usr_00001", "payment_succeeded", at(_day(3)), revenue=-30.0, currency="USD"),
                         silver_event("usr_00001", "page_viewed", at(_day(3)))])
    store = FeatureStore(paths)
    store.materialize(_day(2))
    out = {m.view: m for m in store.materialize(_day(3), accept_drift=True)}
    assert out["user_features"].status == "held" and not out["user_features"].gx_passed
    assert "revenue_28d" in out["user_features"].gx_summary
    assert _day(3) not in store.published_days("user_features")
    assert out["user_sessions"].status == "published"  # views are gated independently


@pytest.mark.parametrize("bad", ["2025-01-01T00:00:00", "yesterday"])
def test_feature_lookups_reject_naive_or_malformed_moments(bad, paths, capsys):
    from orchestration.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["features", "get", "usr_1", "--at", bad, "--root", paths.root])
    assert exc.value.code == 2
    assert "time zone" in capsys.readouterr().err or bad == "yesterday"


def test_the_cli_lists_shows_and_gets_features(paths, capsys):
    from orchestration.cli import main

    synthetic_days(paths, START, 3, people=40, seed=8)
    FeatureStore(paths).materialize(_day(2))
    person = FeatureStore(paths).history("user_features")["person_id"][0]
    capsys.readouterr()

    assert main(["features", "list", "--root", paths.root]) == 0
    listing = capsys.readouterr().out
    assert "user_marketing" in listing and "2025-01-03" in listing

    assert main(["features", "show", "user_sessions", "--root", paths.root]) == 0
    shown = capsys.readouterr().out
    assert "window_ratio(bounces / sessions, 28d)" in shown and "published" in shown

    assert main(["features", "get", person, "--at", "2025-01-04T08:00:00Z", "--json", "--root", paths.root]) == 0
    values = json.loads(capsys.readouterr().out)
    expected = FeatureStore(paths).history("user_features", entity_ids=[person]).row(0, named=True)
    assert values["events_28d"] == expected["events_28d"] and values["plan"] == "free"
    # Online, now (2026 or later): the 2025 values are long expired, and the command says so.
    assert main(["features", "get", person, "--root", paths.root]) == 1
    assert "no values" in capsys.readouterr().err
    assert main(["features", "show", "no_such_view", "--root", paths.root]) == 2

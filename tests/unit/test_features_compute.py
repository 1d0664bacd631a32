"""Feature values from rollups, against hand-computed cases; rollups from silver rows."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from growth_loops.features import VIEWS, FeatureStoreError, get_view
from growth_loops.features.aggregations import window_sum
from growth_loops.features.compute import compute_view, valid_from_for
from growth_loops.features.rollups import (
    NON_ACTIVITY_EVENTS,
    REPORTING_CURRENCY,
    events_rollup,
)
from growth_loops.features.views import Feature, FeatureView
from tests.feature_helpers import at, silver_event

D = dt.date(2025, 3, 31)
ROOT = Path(__file__).resolve().parents[2]


def _days_ago(n: int) -> dt.date:
    return D - dt.timedelta(days=n)


def _events_rollup(rows: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema_overrides={"revenue": pl.Float64, "currency": pl.String, "plan": pl.String,
                                                 "onboarding_step": pl.String, "consent_marketing": pl.Boolean,
                                                 "utm_source": pl.String})
    days = sorted({r["event_date"] for r in rows})
    return pl.concat([events_rollup(frame.filter(pl.col("event_date") == d), d) for d in days])


def _user_features(rows: list[dict]) -> dict[str, dict]:
    rollup = _events_rollup(rows)
    out = compute_view(get_view("user_features"), D, source_rows=rollup, activity=rollup)
    return {r["person_id"]: r for r in out.iter_rows(named=True)}


def test_windows_include_their_first_day_and_exclude_the_day_before():
    rows = [silver_event("p", "page_viewed", at(_days_ago(n))) for n in (0, 6, 7, 27, 28)]
    got = _user_features(rows)["p"]
    assert (got["events_7d"], got["events_28d"], got["active_days_28d"]) == (2, 4, 4)
    assert got["days_since_last_seen"] == 0
    assert got["valid_from"] == valid_from_for(D) == dt.datetime(2025, 4, 1, tzinfo=dt.UTC)


def test_rows_after_the_materialized_day_are_never_used():
    rows = [silver_event("p", "page_viewed", at(_days_ago(3))),
            silver_event("p", "page_viewed", at(D + dt.timedelta(days=1))),
            silver_event("p", "subscription_started", at(D + dt.timedelta(days=1)), plan="pro")]
    got = _user_features(rows)["p"]
    assert (got["events_7d"], got["days_since_last_seen"], got["plan"]) == (1, 3, "free")


def test_population_is_people_active_in_the_last_28_days():
    rows = [silver_event("recent", "page_viewed", at(_days_ago(27))),
            silver_event("gone", "page_viewed", at(_days_ago(28))),
            # Receiving an email or being billed is not activity.
            silver_event("billed", "payment_succeeded", at(D), revenue=9.0, currency="USD"),
            silver_event("billed", "page_viewed", at(_days_ago(40)))]
    got = _user_features(rows)
    assert set(got) == {"recent"}
    assert got["recent"]["days_since_last_seen"] == 27


def test_revenue_counts_collected_payments_in_the_reporting_currency():
    rows = [silver_event("p", "page_viewed", at(D)),
            silver_event("p", "payment_succeeded", at(_days_ago(1)), revenue=20.0, currency=REPORTING_CURRENCY),
            silver_event("p", "payment_succeeded", at(_days_ago(2)), revenue=10.0, currency="EUR"),
            silver_event("p", "payment_succeeded", at(_days_ago(30)), revenue=99.0, currency=REPORTING_CURRENCY)]
    assert _user_features(rows)["p"]["revenue_28d"] == 20.0


def test_lifecycle_state_plan_trial_days_and_onboarding():
    trial = {"plan": "pro", "trial_days": 14}
    rows = [
        silver_event("trialist", "trial_started", at(_days_ago(3), 18), plan="pro", properties=trial),
        silver_event("trialist", "onboarding_step_completed", at(_days_ago(40)), onboarding_step="profile"),
        silver_event("trialist", "onboarding_step_completed", at(_days_ago(2)), onboarding_step="tour"),
        silver_event("trialist", "onboarding_step_completed", at(_days_ago(1)), onboarding_step="profile"),
        silver_event("converted", "trial_started", at(_days_ago(9)), plan="team", properties={**trial, "plan": "team"}),
        silver_event("converted", "subscription_started", at(_days_ago(2)), plan="team"),
        silver_event("converted", "page_viewed", at(D)),
        silver_event("churned", "subscription_started", at(_days_ago(20)), plan="pro"),
        silver_event("churned", "subscription_cancelled", at(_days_ago(5)), plan="pro"),
        silver_event("churned", "page_viewed", at(_days_ago(5))),
    ]
    got = _user_features(rows)
    # Trial ends at day-3 18:00 + 14 days = 2025-04-11 18:00; from 2025-04-01 00:00 that is 10.75 -> 11 days.
    assert (got["trialist"]["plan"], got["trialist"]["trial_days_left"]) == ("trial", 11)
    assert got["trialist"]["onboarding_steps_completed"] == 2  # distinct, over the whole history
    assert (got["converted"]["plan"], got["converted"]["trial_days_left"]) == ("team", None)
    assert (got["churned"]["plan"], got["churned"]["onboarding_steps_completed"]) == ("free", 0)


def test_session_ratios_are_null_without_sessions():
    sessions_view = get_view("user_sessions")
    activity = _events_rollup([silver_event("a", "page_viewed", at(D)), silver_event("b", "page_viewed", at(D))])
    rollup = pl.DataFrame({"person_id": ["a", "a"], "day": [D, _days_ago(10)], "sessions": [2, 1],
                           "session_seconds": [100.0, 50.0], "bounces": [1, 0]})
    view = compute_view(sessions_view, D, source_rows=rollup, activity=activity)
    got = {r["person_id"]: r for r in view.iter_rows(named=True)}
    assert (got["a"]["sessions_7d"], got["a"]["sessions_28d"]) == (2, 3)
    assert got["a"]["avg_session_duration_s_28d"] == 50.0 and got["a"]["bounce_rate_28d"] == pytest.approx(1 / 3)
    b = got["b"]
    assert (b["sessions_28d"], b["avg_session_duration_s_28d"], b["bounce_rate_28d"]) == (0, None, None)


def test_a_feature_without_aggregation_cannot_be_materialized():
    view = FeatureView(name="v", features=(Feature("x", "int64", "hand-fed"),), ttl=dt.timedelta(days=1),
                       owner="o", source="silver.events")
    with pytest.raises(FeatureStoreError, match="without an aggregation"):
        compute_view(view, D, source_rows=pl.DataFrame(), activity=pl.DataFrame())


def test_aggregations_refuse_malformed_windows():
    with pytest.raises(FeatureStoreError, match="positive whole number"):
        window_sum("events", days=0)


def test_activity_and_currency_rules_match_the_dbt_project():
    project = yaml.safe_load((ROOT / "dbt_project" / "dbt_project.yml").read_text())
    assert tuple(project["vars"]["non_activity_events"]) == NON_ACTIVITY_EVENTS
    assert project["vars"]["reporting_currency"] == REPORTING_CURRENCY


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
def test_every_view_has_a_suite_that_checks_its_key_and_features(view):
    suite = json.loads((ROOT / "expectations" / "suites" / f"features_{view.name}.json").read_text())
    columns = {e["kwargs"].get("column") for e in suite} | {e["kwargs"].get("column_A") for e in suite}
    assert {view.entity, "valid_from"} <= columns
    assert set(view.feature_names) <= columns, set(view.feature_names) - columns


def test_a_store_refuses_views_whose_names_or_features_repeat(tmp_path):
    from dataclasses import replace

    from growth_loops.features.store import FeatureStore

    FeatureStore(tmp_path)  # the shipped catalog is valid
    first = VIEWS[0]
    with pytest.raises(FeatureStoreError, match="view names repeat"):
        FeatureStore(tmp_path, views=[*VIEWS, first])
    with pytest.raises(FeatureStoreError, match="feature names repeat across views"):
        FeatureStore(tmp_path, views=[*VIEWS, replace(first, name=f"{first.name}_copy")])

"""Every feature view the loops may read, declared in one place.

To add a feature: declare it here with its aggregation, add its range to the view's Great
Expectations suite (``expectations/suites/features_<view>.json``), and materialize. A new
rollup column goes in ``rollups.py``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from growth_loops.features.aggregations import (
    active_days,
    days_left,
    days_since_last_active,
    distinct_count,
    latest,
    window_ratio,
    window_sum,
)
from growth_loops.features.errors import FeatureStoreError
from growth_loops.features.views import Feature, FeatureView

__all__ = ["USER_FEATURES", "USER_MARKETING", "USER_SESSIONS", "VIEWS", "get_view"]

_TTL = datetime.timedelta(days=2)  # nightly materialization, one missed night tolerated
_OWNER = "growth-data"

USER_FEATURES = FeatureView(
    name="user_features",
    source="silver.events",
    owner=_OWNER,
    ttl=_TTL,
    description="Activity, revenue and lifecycle of each person active in the last 28 days.",
    features=(
        Feature("events_7d", "int64", "Activity events in the last 7 days.", window_sum("events", days=7)),
        Feature("events_28d", "int64", "Activity events in the last 28 days.", window_sum("events", days=28)),
        Feature("active_days_28d", "int64", "Days with activity in the last 28 days.", active_days(days=28)),
        Feature("days_since_last_seen", "int64", "Whole days since the last day with activity (0 = today).",
                days_since_last_active()),
        Feature("revenue_28d", "float64", "Payments collected in the last 28 days, USD.",
                window_sum("revenue", days=28)),
        Feature("onboarding_steps_completed", "int64", "Distinct onboarding steps ever completed (0-5).",
                distinct_count("onboarding_steps")),
        Feature("trial_days_left", "int64", "Whole days until the trial ends; null when not on a trial.",
                days_left("trial_end_ts", while_state=("plan_state", "trial"))),
        Feature("plan", "string", "Current plan: free, trial, pro or team.", latest("plan_state", default="free")),
    ),
)

USER_SESSIONS = FeatureView(
    name="user_sessions",
    source="silver.sessions",
    owner=_OWNER,
    ttl=_TTL,
    description="Session engagement of each person active in the last 28 days.",
    features=(
        Feature("sessions_7d", "int64", "Sessions started in the last 7 days.", window_sum("sessions", days=7)),
        Feature("sessions_28d", "int64", "Sessions started in the last 28 days.", window_sum("sessions", days=28)),
        Feature("avg_session_duration_s_28d", "float64", "Mean session length over the last 28 days, seconds.",
                window_ratio("session_seconds", "sessions", days=28)),
        Feature("bounce_rate_28d", "float64", "Share of the last 28 days' sessions with a single event.",
                window_ratio("bounces", "sessions", days=28)),
    ),
)

USER_MARKETING = FeatureView(
    name="user_marketing",
    source="silver.events",
    owner=_OWNER,
    ttl=_TTL,
    requires_consent="marketing",
    description="Email engagement and acquisition channel; only for people with marketing consent.",
    features=(
        Feature("emails_opened_28d", "int64", "Emails opened in the last 28 days.",
                window_sum("emails_opened", days=28)),
        Feature("emails_clicked_28d", "int64", "Emails clicked in the last 28 days.",
                window_sum("emails_clicked", days=28)),
        Feature("last_utm_source", "string", "Newest utm_source the person arrived with.", latest("utm_source")),
    ),
)

VIEWS: tuple[FeatureView, ...] = (USER_FEATURES, USER_SESSIONS, USER_MARKETING)


def get_view(name: str) -> FeatureView:
    """The declared view called ``name``."""
    for view in VIEWS:
        if view.name == name:
            return view
    raise FeatureStoreError(
        f"feature view {name!r}", "no view has that name", f"Use one of {', '.join(v.name for v in VIEWS)}."
    )


def check_catalog(views: Sequence[FeatureView] = VIEWS) -> None:
    """Refuse views whose names repeat, or features whose names repeat across views (online lookups
    join views by feature name). Called by :class:`~growth_loops.features.store.FeatureStore` when it
    is made, not at import."""
    names = [v.name for v in views]
    if len(set(names)) != len(names):
        raise FeatureStoreError("feature catalog", "view names repeat", "Give every view a unique name.")
    features = [f for v in views for f in v.feature_names]
    clashes = sorted({f for f in features if features.count(f) > 1})
    if clashes:
        raise FeatureStoreError(
            "feature catalog", f"feature names repeat across views: {', '.join(clashes)}",
            "Feature names are unique across views so online lookups can join views.",
        )

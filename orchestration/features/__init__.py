"""Feature store wiring: one daily-partitioned asset per feature view, gated, and its nightly schedule."""

from orchestration.features.assets import FEATURE_KEYS, daily, materialize_features
from orchestration.features.schedules import (
    nightly_features_job,
    nightly_features_schedule,
)

__all__ = ["FEATURE_KEYS", "daily", "materialize_features", "nightly_features_job", "nightly_features_schedule"]

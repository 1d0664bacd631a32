"""The nightly feature materialization and its schedule (yesterday's partition, after the warehouse)."""

import dagster as dg

from orchestration.features.assets import daily
from orchestration.trust import TRUST_HOOKS

__all__ = ["nightly_features_job", "nightly_features_schedule"]

nightly_features_job = dg.define_asset_job(
    "nightly_features",
    selection=dg.AssetSelection.groups("features"),
    partitions_def=daily,
    executor_def=dg.in_process_executor,
    hooks=TRUST_HOOKS,
    description="Materialize yesterday's feature values of every view, gated (GX and drift) before publishing.",
)

# Daily partitions close at midnight UTC; run at 03:00, after the 02:30 warehouse build.
nightly_features_schedule = dg.build_schedule_from_partitioned_job(
    nightly_features_job, name="nightly_features_materialization", hour_of_day=3, minute_of_hour=0,
)

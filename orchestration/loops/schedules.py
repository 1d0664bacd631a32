"""The nightly decision run (after the features) and its schedule."""

import dagster as dg

from orchestration.features.assets import daily
from orchestration.trust import TRUST_HOOKS

__all__ = ["nightly_loops_job", "nightly_loops_schedule"]

nightly_loops_job = dg.define_asset_job(
    "nightly_loops",
    selection=dg.AssetSelection.groups("loops"),
    partitions_def=daily,
    executor_def=dg.in_process_executor,
    hooks=TRUST_HOOKS,
    description="Every growth loop decides for yesterday: gates, approvals, guardrails, then the outbox.",
)

# After the features (03:00 UTC): decisions for the day that just closed, actuated from today.
nightly_loops_schedule = dg.build_schedule_from_partitioned_job(
    nightly_loops_job, name="nightly_loop_decisions", hour_of_day=3, minute_of_hour=30,
)

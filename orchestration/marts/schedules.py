"""The nightly warehouse build (dbt marts) and its schedule."""

import dagster as dg

from orchestration.trust import TRUST_HOOKS

__all__ = ["nightly_warehouse_job", "nightly_warehouse_schedule"]

nightly_warehouse_job = dg.define_asset_job(
    "nightly_warehouse",
    selection=dg.AssetSelection.groups("staging", "intermediate", "marts"),
    executor_def=dg.in_process_executor,
    hooks=TRUST_HOOKS,
    description="dbt build of the analyst warehouse (staging, intermediate, marts and their tests), "
                "swapped in atomically.",
)

nightly_warehouse_schedule = dg.ScheduleDefinition(
    name="nightly_warehouse_build", job=nightly_warehouse_job, cron_schedule="30 2 * * *", execution_timezone="UTC",
)

"""The nightly erasure run and its schedule: before the warehouse build.

02:00 UTC, half an hour before ``nightly_warehouse_build`` (02:30), so the night's dbt build reads
silver without the people erased. Correctness does not depend on that order: the erasure rewrites
the warehouse itself (under the warehouse writer lock, after silver), so whichever of the two runs
first — or if they overlap — the warehouse ends up without them.
"""

import dagster as dg

from orchestration.governance.assets import ERASURES_KEY
from orchestration.trust import TRUST_HOOKS

__all__ = ["nightly_erasures_job", "nightly_erasures_schedule"]

nightly_erasures_job = dg.define_asset_job(
    "nightly_erasures",
    selection=[ERASURES_KEY],
    executor_def=dg.in_process_executor,
    hooks=TRUST_HOOKS,
    description="Right to erasure: erase the people whose consent revocation is pending, everywhere in the lake.",
)

nightly_erasures_schedule = dg.ScheduleDefinition(
    name="nightly_erasures",
    job=nightly_erasures_job,
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
)

"""The hourly job (landing hour -> bronze -> silver, with their gates) and its schedule."""

from __future__ import annotations

import dagster as dg

from orchestration.bronze.partitions import hourly
from orchestration.trust import TRUST_HOOKS

__all__ = ["bronze_ingestion_job", "hourly_ingestion_schedule"]

# In-process: one small step per hour; a subprocess per step would cost more than the work.
bronze_ingestion_job = dg.define_asset_job(
    "hourly_ingestion",
    selection=dg.AssetSelection.groups("bronze", "silver"),
    partitions_def=hourly,
    executor_def=dg.in_process_executor,
    hooks=TRUST_HOOKS,
    description="Ingest one landing hour into bronze (events, quarantine, ledger) and bring silver up to date, "
                "each behind its blocking gates.",
)

# Ten minutes past each hour, ingest the hour that just closed (late events land in later folders).
hourly_ingestion_schedule = dg.build_schedule_from_partitioned_job(
    bronze_ingestion_job, minute_of_hour=10, name="hourly_ingestion_schedule"
)

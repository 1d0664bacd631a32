"""The one Dagster entry point (workspace.yaml loads it): every layer's definitions together."""

from __future__ import annotations

import dagster as dg

from orchestration import bronze
from orchestration.resources import LakeResource

__all__ = ["defs", "build_definitions"]


def build_definitions(*, lake: LakeResource | None = None) -> dg.Definitions:
    """Build the definitions; tests pass a ``LakeResource`` rooted in a temporary folder."""
    return dg.Definitions(
        assets=[bronze.landing_events, bronze.ingest_landing_hour],
        asset_checks=[bronze.ledger_reconciles],
        jobs=[bronze.bronze_ingestion_job],
        schedules=[bronze.hourly_ingestion_schedule],
        sensors=[bronze.landing_files_sensor],
        resources={"lake": lake or LakeResource()},
    )


defs = build_definitions()

"""The one Dagster entry point (workspace.yaml loads it): every layer's definitions together."""

from __future__ import annotations

import dagster as dg

from orchestration import bronze, features, governance, loops, marts, reports, silver
from orchestration.alerts import freshness_sla_sensor, run_failure_alert_sensor
from orchestration.automation import AUTOMATION_SENSOR
from orchestration.resources import LakeResource
from orchestration.trust import TRUST_HOOKS, daily_trust_consistent, data_trust_daily

__all__ = ["build_definitions", "defs"]


def build_definitions(*, lake: LakeResource | None = None) -> dg.Definitions:
    """Build the definitions; tests pass a ``LakeResource`` rooted in a temporary folder.

    This is where the settings are first read (the lake's root) and the dbt manifest is prepared
    for that root when it is missing or stale — when Dagster loads the code location, never at import.
    """
    lake = lake or LakeResource()
    materialized = [bronze.ingest_landing_hour, silver.build_silver_hour, marts.build_marts_assets(lake.paths()),
                    features.materialize_features, loops.decide_loops, reports.board_report,
                    governance.process_erasures]
    return dg.Definitions(
        # The trust hooks on the assets and checks themselves, not only on the jobs: a run the automation sensor
        # (or the UI's "Materialize") starts records its gates and alerts like a job's (a hook on both runs once).
        assets=[bronze.landing_events, *(a.with_hooks(set(TRUST_HOOKS)) for a in materialized), data_trust_daily],
        asset_checks=[c.with_hooks(set(TRUST_HOOKS)) for c in (
            bronze.landing_hour_readable, bronze.ledger_reconciles, bronze.volume_within_history,
            bronze.landing_drift, daily_trust_consistent, marts.oec_within_learned_band,
            governance.erased_subjects_absent, reports.board_reconciles_with_marts)],
        jobs=[bronze.bronze_ingestion_job, marts.nightly_warehouse_job, features.nightly_features_job,
              loops.nightly_loops_job, reports.nightly_report_job, governance.nightly_erasures_job,
              governance.nightly_maintenance_job],
        schedules=[bronze.hourly_ingestion_schedule, marts.nightly_warehouse_schedule,
                   features.nightly_features_schedule, loops.nightly_loops_schedule,
                   reports.nightly_report_schedule, governance.nightly_erasures_schedule,
                   governance.nightly_maintenance_schedule],
        sensors=[bronze.landing_files_sensor, freshness_sla_sensor, run_failure_alert_sensor, AUTOMATION_SENSOR],
        resources={"lake": lake, "dbt": marts.dbt_resource()},
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location of ``workspace.yaml`` / ``dagster dev``: loaded lazily, by Dagster, not at import."""
    return build_definitions()

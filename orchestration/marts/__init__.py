"""Marts wiring: the dbt project (staging / intermediate / marts) in the analyst warehouse."""

from orchestration.marts.checks import oec_within_learned_band
from orchestration.marts.dbt import dbt_resource, marts_dbt_assets
from orchestration.marts.schedules import nightly_warehouse_job, nightly_warehouse_schedule

__all__ = ["dbt_resource", "marts_dbt_assets", "oec_within_learned_band", "nightly_warehouse_job", "nightly_warehouse_schedule"]

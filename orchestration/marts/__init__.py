"""Marts wiring: the dbt project (staging / intermediate / marts) in the analyst warehouse."""

from orchestration.marts.checks import oec_within_learned_band
from orchestration.marts.dbt import build_marts_assets, dbt_resource
from orchestration.marts.schedules import nightly_warehouse_job, nightly_warehouse_schedule

__all__ = ["build_marts_assets", "dbt_resource", "oec_within_learned_band", "nightly_warehouse_job",
           "nightly_warehouse_schedule"]

"""Asset specs shared by the lake layers."""

import dagster as dg

from orchestration.bronze.partitions import hourly
from orchestration.freshness import freshness

__all__ = ["hourly_delta_spec"]


def hourly_delta_spec(
    key: dg.AssetKey, description: str, *, layer: str, upstream: dg.AssetKey | dg.AssetSpec,
    automation_condition: dg.AutomationCondition | None = None,
) -> dg.AssetSpec:
    """An hourly-partitioned Delta table of a lake layer, grouped by layer, with its freshness SLA (and the
    automation condition that builds it, if any: orchestration/automation.py)."""
    return dg.AssetSpec(
        key,
        description=description,
        deps=[upstream],
        group_name=layer,
        kinds={"delta", "polars"},
        freshness_policy=freshness(layer),
        partitions_def=hourly,
        automation_condition=automation_condition,
    )

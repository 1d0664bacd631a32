"""Asset specs shared by the lake layers."""

import dagster as dg

from orchestration.bronze.partitions import hourly
from orchestration.freshness import freshness

__all__ = ["hourly_delta_spec"]


def hourly_delta_spec(
    key: dg.AssetKey, description: str, *, layer: str, upstream: dg.AssetKey | dg.AssetSpec
) -> dg.AssetSpec:
    """An hourly-partitioned Delta table of a lake layer, grouped by layer, with its freshness SLA."""
    return dg.AssetSpec(
        key,
        description=description,
        deps=[upstream],
        group_name=layer,
        kinds={"delta", "polars"},
        freshness_policy=freshness(layer),
        partitions_def=hourly,
    )

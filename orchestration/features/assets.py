"""Feature views as Dagster assets: ``["features", <view>]``, partitioned by day, gated before publish.

Each view has two blocking checks: its Great Expectations suite (``gx_features_<view>``) and the
population-stability drift check against the previous materialization (``drift_<view>``). The
store evaluates both before it publishes anything; the checks report that verdict, so a failure
both keeps the values out of the offline and online stores and stops everything downstream.
"""

import datetime

import dagster as dg

from growth_loops.features import VIEWS, FeatureStore
from growth_loops.features.views import FeatureView
from orchestration.automation import nightly_after_gates
from orchestration.freshness import freshness
from orchestration.gates import require_gated_silver
from orchestration.resources import LakeResource
from orchestration.silver.assets import SILVER_EVENTS_KEY, SILVER_SESSIONS_KEY

__all__ = ["FEATURE_KEYS", "FeatureMaterializationConfig", "daily", "materialize_features"]

daily = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC")
NIGHTLY_CRON = "0 3 * * *"  # daily partitions close at midnight UTC; late hours land by then

_SOURCES = {"silver.events": SILVER_EVENTS_KEY, "silver.sessions": SILVER_SESSIONS_KEY}
FEATURE_KEYS = {view.name: dg.AssetKey(["features", view.name]) for view in VIEWS}


def _owner(owner: str) -> str:
    return owner if "@" in owner else f"team:{owner}"


def _spec(view: FeatureView) -> dg.AssetSpec:
    # every view's population comes from activity (sorted outside the call: in it, mypy types k as any dep)
    deps = sorted({_SOURCES[view.source], SILVER_EVENTS_KEY}, key=lambda k: k.to_user_string())
    return dg.AssetSpec(
        FEATURE_KEYS[view.name],
        description=view.description,
        deps=deps,
        group_name="features",
        kinds={"delta", "polars", "sqlite"},
        owners=[_owner(view.owner)],
        freshness_policy=freshness("features"),
        partitions_def=daily,
        # The day that just closed, at 03:00 UTC, once none of its silver hours failed a gate (automation.py)
        automation_condition=nightly_after_gates(NIGHTLY_CRON),
        metadata={
            "source": view.source,
            "ttl_hours": view.ttl.total_seconds() / 3600,
            "requires_consent": view.requires_consent,
            "drift_threshold": view.drift_threshold,
            "features": dg.MetadataValue.json({f.name: f"{f.dtype}: {f.description}" for f in view.features}),
        },
    )


class FeatureMaterializationConfig(dg.Config):
    """Launchpad settings of a feature materialization."""

    accept_drift: bool = False  # publish despite drift above the threshold (a reviewed, real change)
    drift_threshold: float | None = None  # override every view's PSI threshold for this run


@dg.multi_asset(
    name="materialize_features",
    specs=[_spec(view) for view in VIEWS],
    check_specs=[
        spec
        for view in VIEWS
        for spec in (
            dg.AssetCheckSpec(f"gx_features_{view.name}", asset=FEATURE_KEYS[view.name], blocking=True,
                              partitions_def=daily,
                              description=f"Great Expectations suite features_{view.name} on the day's values, "
                                          "evaluated before they are published."),
            dg.AssetCheckSpec(f"drift_{view.name}", asset=FEATURE_KEYS[view.name], blocking=True,
                              partitions_def=daily,
                              description="Population stability index of every feature against the previous "
                                          f"materialization; above {view.drift_threshold} nothing is published."),
        )
    ],
    partitions_def=daily,
)
def materialize_features(context: dg.AssetExecutionContext, lake: LakeResource, config: FeatureMaterializationConfig):
    """Materialize the day's feature values of every view: rollups, values, gates, then publish."""
    paths = lake.paths()
    require_gated_silver(context.instance, paths, consumer="the feature store")
    day = datetime.date.fromisoformat(context.partition_key)
    store = FeatureStore(paths)
    try:
        results = store.materialize(day, accept_drift=config.accept_drift, drift_threshold=config.drift_threshold)
    finally:
        store.close()
    for m in results:
        key = FEATURE_KEYS[m.view]
        context.log.info(m.summary())
        yield dg.MaterializeResult(asset_key=key, metadata={
            "status": m.status, "people": m.rows, "published": m.passed,
            "delta_version": m.delta_version, "online_rows_written": m.online_rows,
            **({"held_at": m.held_path} if m.held_path else {}),
        })
        yield dg.AssetCheckResult(asset_key=key, check_name=f"gx_features_{m.view}", passed=m.gx_passed,
                                  description=m.gx_summary, metadata={"rows_validated": m.rows})
        drift_meta = m.drift.to_metadata() if m.drift is not None else {"note": m.drift_note}
        yield dg.AssetCheckResult(
            asset_key=key, check_name=f"drift_{m.view}", passed=m.drift_passed is not False or m.drift_accepted,
            description=(m.drift.summary() if m.drift is not None else f"not compared: {m.drift_note}")
            + (" — accepted by the operator" if m.drift_accepted else ""),
            metadata={"previous_day": m.previous_day.isoformat() if m.previous_day else None,
                      "report": dg.MetadataValue.json(drift_meta)},
        )

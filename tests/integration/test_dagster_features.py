"""Feature views as Dagster assets: the gates are blocking checks, so drifted values stop everything downstream."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from growth_loops.features import FeatureStore
from orchestration.features import FEATURE_KEYS, daily, materialize_features
from orchestration.resources import LakeResource
from tests.feature_helpers import synthetic_days

pytestmark = pytest.mark.slow

START = dt.date(2025, 1, 1)


@dg.asset(key=["loops", "probe", "decisions"], deps=[FEATURE_KEYS["user_features"]], partitions_def=daily)
def probe_decisions() -> dg.MaterializeResult:
    """Stands in for a growth loop reading the features."""
    return dg.MaterializeResult(metadata={"decided": True})


def _job(paths) -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[materialize_features, probe_decisions],
        jobs=[dg.define_asset_job("features_then_decisions", partitions_def=daily,
                                  executor_def=dg.in_process_executor)],
        resources={"lake": LakeResource(root=paths.root)},
    )
    return defs.resolve_job_def("features_then_decisions")


def test_drifted_features_fail_the_blocking_check_and_nothing_downstream_runs(paths):
    synthetic_days(paths, START, 30, people=300, seed=21)
    job, instance = _job(paths), dg.DagsterInstance.ephemeral()
    for day in ("2025-01-28", "2025-01-29"):
        ok = job.execute_in_process(partition_key=day, instance=instance)
        assert ok.success
        materialized = {e.asset_key for e in ok.get_asset_materialization_events()}
        assert materialized >= {dg.AssetKey(["loops", "probe", "decisions"])}
        assert all(c.passed for c in ok.get_asset_check_evaluations())

    synthetic_days(paths, dt.date(2025, 1, 30), 1, people=300, seed=22, events_per_day=60)
    res = job.execute_in_process(partition_key="2025-01-30", instance=instance, raise_on_error=False)

    failed = {c.check_name for c in res.get_asset_check_evaluations() if not c.passed}
    assert "drift_user_features" in failed and "gx_features_user_features" not in failed
    materialized = {e.asset_key for e in res.get_asset_materialization_events()}
    assert dg.AssetKey(["loops", "probe", "decisions"]) not in materialized
    assert dt.date(2025, 1, 30) not in FeatureStore(paths).published_days("user_features")

    # The operator reviews the shift and accepts it from the launchpad config: the loop runs.
    res = job.execute_in_process(partition_key="2025-01-30", instance=instance, run_config={
        "ops": {"materialize_features": {"config": {"accept_drift": True}}}})
    assert res.success and dg.AssetKey(["loops", "probe", "decisions"]) in {
        e.asset_key for e in res.get_asset_materialization_events()}
    assert dt.date(2025, 1, 30) in FeatureStore(paths).published_days("user_features")


def test_feature_assets_declare_freshness_owner_and_blocking_gates(definitions):
    defs = definitions
    graph = defs.resolve_asset_graph()
    for name, key in FEATURE_KEYS.items():
        node = graph.get(key)
        assert node.partitions_def == daily
        assert node.freshness_policy is not None
        assert node.owners == ["team:growth-data"]
        checks = {spec.name: spec for spec in materialize_features.check_specs if spec.asset_key == key}
        assert set(checks) == {f"gx_features_{name}", f"drift_{name}"}
        assert all(spec.blocking for spec in checks.values())
    assert defs.resolve_job_def("nightly_features").partitions_def == daily
    schedule = defs.resolve_schedule_def("nightly_features_materialization")
    assert schedule.cron_schedule == "0 3 * * *"

"""Files dropped into landing become marts without a click: the landing sensor observes the hour and runs
the hourly ingestion, then the declarative automation (orchestration/automation.py) builds the warehouse —
and does not when a silver gate failed. In process, on a real DagsterInstance, as the daemon would: a
sensor tick, its observations recorded, its run executed, then automation ticks and their runs executed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from lake.ingest import partition_key
from lake.trust import latest_gate_evaluations
from orchestration.definitions import build_definitions
from orchestration.resources import LakeResource
from tests.helpers import event, write_batch

pytestmark = pytest.mark.slow

LANDING = dg.AssetKey(["landing", "events"])
TRUST = dg.AssetKey(["observability", "data_trust_daily"])
WAREHOUSE_KEYS = {"staging/stg_silver__events", "marts/fct_daily_oec", "marts/dim_users"}


def _land_recent_hour(paths, n: int = 40) -> str:
    """A closed hour of today or yesterday with ``n`` page views of a few people."""
    hour = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    key = partition_key(hour)
    ts = hour.strftime("%Y-%m-%dT%H:15:00Z")
    rec = hour.strftime("%Y-%m-%dT%H:15:02Z")
    write_batch(paths, key, [event(props={"path": f"/p{i}"}, ts=ts, received=rec, anonymous_id=f"anon-{i % 7}",
                                   user_id=f"usr-{i % 7}" if i % 2 else None)  # signed in: identity links
                             for i in range(n)])
    return key


def _sensor_tick(defs, instance, paths, cursor=None) -> dg.SensorResult:
    """One tick of the landing sensor, its observations recorded and its runs executed (the daemon's part)."""
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    with dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor,
                                 resources={"lake": LakeResource(root=paths.root)}) as ctx:
        result = sensor(ctx)
    assert isinstance(result, dg.SensorResult)
    for observation in result.asset_events:
        instance.report_runless_asset_event(observation)
    for request in result.run_requests or []:
        run = defs.resolve_job_def("hourly_ingestion").execute_in_process(
            instance=instance, partition_key=request.partition_key, raise_on_error=False)
        assert run.success, "the hourly ingestion of a clean hour failed"
    return result


def _automation_tick(defs, instance, cursor=None):
    """One evaluation of every automation condition, its requested runs executed; returns the new cursor and
    the asset keys it built."""
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    built: set[str] = set()
    by_partition: dict[str | None, list[dg.AssetKey]] = {}
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        for partition in result.get_requested_partitions(key):
            by_partition.setdefault(partition, []).append(key)
    job = defs.resolve_implicit_global_asset_job_def()
    for partition, keys in by_partition.items():  # the runs the sensor would launch: one per partition
        run = job.execute_in_process(instance=instance, asset_selection=keys, partition_key=partition,
                                     raise_on_error=False)
        assert run.success, f"the automation run of {keys} failed"
        built |= {m.asset_key.to_user_string() for m in run.get_asset_materialization_events()}
    return result.cursor, built


def _marts_rows(paths) -> int:
    con = duckdb.connect(paths.warehouse, read_only=True)
    try:
        return con.execute("select count(*) from staging.stg_silver__events").fetchone()[0]
    finally:
        con.close()


def test_dropping_files_into_landing_builds_the_marts_through_the_automation(paths):
    defs = build_definitions(lake=LakeResource(root=paths.root))
    with dg.instance_for_test() as instance:
        cursor, built = _automation_tick(defs, instance)  # the first tick only sets the baseline
        assert built == set()

        key = _land_recent_hour(paths)
        tick = _sensor_tick(defs, instance, paths)
        assert [r.partition_key for r in tick.run_requests or []] == [key]
        # landing/events observed: a data version from its file listing, freshness from its newest file
        observation = instance.fetch_observations(LANDING, limit=1).records[0].asset_observation
        assert observation is not None and observation.partition == key
        assert observation.tags["dagster/data_version"] and observation.metadata["files"].value == 1
        assert abs(observation.metadata["dagster/last_updated_timestamp"].value - datetime.now(UTC).timestamp()) < 600
        assert instance.get_latest_materialization_event(dg.AssetKey(["silver", "events"])) is not None

        cursor, built = _automation_tick(defs, instance, cursor)
        assert WAREHOUSE_KEYS <= built, f"the automation did not build the warehouse: {sorted(built)}"
        assert _marts_rows(paths) == 40
        # the automation's run recorded its gates in the trust tables, like a job's (hooks on the assets)
        gates = set(latest_gate_evaluations(paths)["gate"].to_list())
        assert {"gx_fct_daily_oec", "gx_silver_events"} <= gates
        # the build rewrote observability/data_trust_daily: the freshness sensor observes it (its freshness)
        with dg.build_sensor_context(instance=instance, definitions=defs,
                                     resources={"lake": LakeResource(root=paths.root)}) as ctx:
            defs.resolve_sensor_def("freshness_sla_sensor")(ctx)
        (trust,) = instance.fetch_observations(TRUST, limit=5).records
        assert trust.asset_observation is not None
        assert abs(trust.asset_observation.metadata["dagster/last_updated_timestamp"].value
                   - datetime.now(UTC).timestamp()) < 600
        # nothing new upstream: nothing more to build (no loop of rebuilds, though the build rewrote the
        # trust table); and the same files seen again by the sensor observe nothing new
        cursor, built = _automation_tick(defs, instance, cursor)
        assert built == set()
        again = _sensor_tick(defs, instance, paths, cursor=tick.cursor)
        assert list(again.asset_events) == [] and not again.run_requests  # its ledger has these very files

        # new files in the hour: observed, ingested, and the warehouse rebuilt with them
        hour = datetime.strptime(key, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
        ts, rec = hour.strftime("%Y-%m-%dT%H:40:00Z"), hour.strftime("%Y-%m-%dT%H:40:02Z")
        write_batch(paths, key, [event(ts=ts, received=rec, anonymous_id="anon-late") for _ in range(5)],
                    name="batch-2.jsonl")
        later = _sensor_tick(defs, instance, paths, cursor=tick.cursor)
        assert len(later.asset_events) == 1
        cursor, built = _automation_tick(defs, instance, cursor)
        assert "marts/fct_daily_oec" in built and _marts_rows(paths) == 45


def test_a_failed_silver_gate_holds_the_warehouse_automation(paths):
    defs = build_definitions(lake=LakeResource(root=paths.root))
    with dg.instance_for_test() as instance:
        cursor, _ = _automation_tick(defs, instance)
        key = _land_recent_hour(paths)
        _sensor_tick(defs, instance, paths)
        # the hour's silver gate fails on the data it built (a real failure is reported by the silver build's
        # step; here the verdict is reported on its materialization): new silver data, gate failed
        silver = dg.AssetKey(["silver", "events"])
        mat = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=silver, asset_partitions=[key]),
                                              limit=1).records[0]
        instance.report_runless_asset_event(dg.AssetCheckEvaluation(
            asset_key=silver, check_name="gx_silver_events", passed=False, partition=key,
            target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
                storage_id=mat.storage_id, run_id=mat.run_id, timestamp=mat.timestamp)))
        cursor, built = _automation_tick(defs, instance, cursor)
        assert built == set(), f"built on a failed gate: {sorted(built)}"
        # the hour re-ingested and re-gated (its gates pass): the warehouse is built
        run = defs.resolve_job_def("hourly_ingestion").execute_in_process(instance=instance, partition_key=key)
        assert run.success
        cursor, built = _automation_tick(defs, instance, cursor)
        assert WAREHOUSE_KEYS <= built

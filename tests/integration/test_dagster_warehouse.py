"""The nightly warehouse job through Dagster: dbt models materialize, dbt tests are checks."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from lake.contracts import load_plan
from lake.ingest import ingest_partition, list_landing_partitions
from lake.silver import build_silver
from orchestration.definitions import build_definitions
from orchestration.resources import LakeResource
from simulation import simulate

pytestmark = pytest.mark.slow


def _simulated_silver(paths, masker, *, users: int, days: int, seed: int) -> None:
    """Simulated traffic ingested hour by hour into bronze, then silver built."""
    simulate(paths.root, users=users, days=days, seed=seed)
    plan = load_plan()
    for key in list_landing_partitions(paths):
        ingest_partition(paths, key, plan=plan, masker=masker)
    build_silver(paths)


def test_nightly_warehouse_job_builds_the_marts_with_dbt_tests_as_checks(paths, masker):
    _simulated_silver(paths, masker, users=150, days=3, seed=5)

    defs = build_definitions(lake=LakeResource(root=paths.root))
    res = defs.resolve_job_def("nightly_warehouse").execute_in_process(instance=dg.DagsterInstance.ephemeral(),
                                                                       raise_on_error=False)
    assert res.success
    built = {m.asset_key.to_user_string() for m in res.get_asset_materialization_events()}
    assert {"marts/fct_daily_oec", "marts/dim_users", "staging/stg_silver__events"} <= built
    checks = res.get_asset_check_evaluations()
    assert len(checks) > 20 and all(c.passed for c in checks)
    assert "gx_fct_daily_oec" in {c.check_name for c in checks}
    # The singular test (two refs) is a check of the OEC through its meta, not an observation.
    [singular] = [c for c in checks if c.check_name == "assert_oec_revenue_reconciles_with_payments"]
    assert singular.asset_key == dg.AssetKey(["marts", "fct_daily_oec"]) and singular.passed

    con = duckdb.connect(paths.warehouse, read_only=True)
    try:
        days, active = con.execute("select count(*), sum(active_users) from marts.fct_daily_oec").fetchone()
        users = con.execute("select count(*) from marts.dim_users").fetchone()[0]
    finally:
        con.close()
    assert days == 3 and active > 0 and users > 0


def test_a_failed_silver_gate_keeps_the_nightly_build_off_that_data(paths):
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(["silver", "events"]), check_name="gx_silver_events", passed=False))
    defs = build_definitions(lake=LakeResource(root=paths.root))
    res = defs.resolve_job_def("nightly_warehouse").execute_in_process(instance=instance, raise_on_error=False)
    assert not res.success
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    assert "silver/events:gx_silver_events" in str(failure.event_specific_data.error)
    assert not Path(paths.warehouse).exists()


def test_a_corrupt_silver_partition_stops_dbt_until_the_next_gated_build_repairs_it(paths):
    """Rows doubled in a silver partition behind the builder's back: the warehouse build refuses
    that unaudited data; the next silver build rolls the write back and its gate passes again."""
    from deltalake import DeltaTable, write_deltalake

    from tests.helpers import event, write_batch

    key = "2026-11-02-05:00"
    write_batch(paths, key, [event(), event(), event(user_id="u-1")])
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(lake=LakeResource(root=paths.root))
    assert defs.resolve_job_def("hourly_ingestion").execute_in_process(partition_key=key, instance=instance).success
    silver = DeltaTable(paths.silver_events).to_pyarrow_table()
    write_deltalake(paths.silver_events, silver, mode="append", partition_by=["event_date"])  # the corruption
    assert DeltaTable(paths.silver_events).to_pyarrow_table().num_rows == 6
    nightly = defs.resolve_job_def("nightly_warehouse")
    refused = nightly.execute_in_process(instance=instance, raise_on_error=False)
    assert not refused.success and not Path(paths.warehouse).exists()
    failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
    assert "delta/silver/events" in str(failure.event_specific_data.error)

    rerun = defs.resolve_job_def("hourly_ingestion").execute_in_process(partition_key=key, instance=instance)
    gate = {e.check_name: e for e in rerun.get_asset_check_evaluations()}["gx_silver_events"]
    assert gate.passed
    assert DeltaTable(paths.silver_events).to_pyarrow_table().num_rows == 3
    assert nightly.execute_in_process(instance=instance, raise_on_error=False).success


def test_backfill_from_a_date_recomputes_older_rows_of_the_daily_facts(paths, masker):
    """From the Dagster launchpad (config of warehouse_dbt_build): backfill_from reaches rows the
    incremental lookback would not."""
    _simulated_silver(paths, masker, users=80, days=4, seed=9)
    defs = build_definitions(lake=LakeResource(root=paths.root))
    job = defs.resolve_job_def("nightly_warehouse")
    instance = dg.DagsterInstance.ephemeral()
    assert job.execute_in_process(instance=instance).success

    def first_day() -> tuple:
        con = duckdb.connect(paths.warehouse, read_only=True)
        try:
            return con.execute("select date_day, active_users from marts.fct_daily_oec order by 1 limit 1").fetchone()
        finally:
            con.close()

    day, truth = first_day()
    con = duckdb.connect(paths.warehouse)
    # The OEC's figures are the incremental model; the mart re-joins them (with the trust verdict) per run.
    con.execute("update intermediate.int_daily_oec_figures set active_users = 9999 where date_day = ?", [day])
    con.close()

    def run(config: dict) -> None:
        cfg = {"ops": {"warehouse_dbt_build": {"config": config}}}
        assert job.execute_in_process(instance=instance, run_config=cfg).success

    run({"lookback_days": 0})  # a normal nightly that only recomputes the last day
    assert first_day() == (day, 9999)
    run({"lookback_days": 0, "backfill_from": day.isoformat()})
    assert first_day() == (day, truth)

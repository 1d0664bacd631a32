"""The Dagster job: definitions load, the asset graph is right, and a bad batch never publishes."""

from __future__ import annotations

from datetime import UTC, date
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lake.ledger import read_entry
from orchestration.cli import main as cli
from orchestration.definitions import build_definitions
from orchestration.resources import LakeResource
from tests.helpers import event, write_batch

KEY = "2026-11-02-05:00"


def test_definitions_load_with_the_asset_graph_checks_and_freshness(definitions):
    defs = definitions
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"landing/events", "bronze/events", "bronze/quarantine", "bronze/ingestion_ledger", "silver/events",
            "silver/identity_map", "silver/sessions", "marts/fct_daily_oec", "marts/dim_users"} <= keys
    oec = graph.get(dg.AssetKey(["marts", "fct_daily_oec"]))
    assert oec.parent_keys == {dg.AssetKey(["intermediate", "int_daily_oec_figures"]),
                               dg.AssetKey(["staging", "stg_observability__data_trust_daily"])}
    figures = graph.get(dg.AssetKey(["intermediate", "int_daily_oec_figures"]))
    assert dg.AssetKey(["marts", "fct_daily_active"]) in figures.parent_keys
    trust = graph.get(dg.AssetKey(["staging", "stg_observability__data_trust_daily"]))
    assert trust.parent_keys == {dg.AssetKey(["observability", "data_trust_daily"])}  # the OEC's trust verdict
    stg = graph.get(dg.AssetKey(["staging", "stg_silver__events"]))
    assert stg.parent_keys == {dg.AssetKey(["silver", "events"])}  # dbt source -> silver asset via meta.dagster
    for key in ("bronze/events", "bronze/quarantine", "bronze/ingestion_ledger"):
        node = graph.get(dg.AssetKey.from_user_string(key))
        assert node.parent_keys == {dg.AssetKey(["landing", "events"])}
        assert node.partitions_def is not None
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert {("bronze/events", "gx_bronze_events"), ("bronze/quarantine", "gx_bronze_quarantine"),
            ("bronze/ingestion_ledger", "ledger_reconciles"), ("silver/events", "gx_silver_events"),
            ("silver/sessions", "gx_silver_sessions"), ("silver/identity_map", "gx_silver_identity_map"),
            ("bronze/events", "volume_within_history"), ("bronze/events", "schema_drift_at_landing"),
            ("bronze/events", "distribution_within_history"), ("bronze/events", "quarantine_rate_within_history")
            } <= checks
    assert any(k.startswith("marts/fct_daily_oec") for k, _ in checks)  # dbt tests became checks
    specs = {s.key.to_user_string(): s for a in repo.assets_defs_by_key.values() for s in a.specs}
    assert all(spec.freshness_policy is not None for spec in specs.values()), "every asset carries a freshness SLA"
    assert defs.resolve_job_def("hourly_ingestion") is not None
    assert defs.resolve_schedule_def("hourly_ingestion_schedule").cron_schedule == "10 * * * *"
    assert defs.resolve_sensor_def("landing_files_sensor") is not None


GATES = [("bronze/events", "gx_bronze_events"), ("bronze/quarantine", "gx_bronze_quarantine"),
         ("bronze/ingestion_ledger", "ledger_reconciles"), ("bronze/events", "volume_within_history"),
         ("bronze/events", "quarantine_rate_within_history"), ("silver/events", "gx_silver_events"),
         ("silver/sessions", "gx_silver_sessions"), ("silver/identity_map", "gx_silver_identity_map"),
         ("marts/fct_daily_oec", "gx_fct_daily_oec")]


@pytest.mark.parametrize(("asset", "check"), GATES)
def test_gates_are_blocking(asset, check, definitions):
    graph = definitions.get_repository_def().asset_graph
    spec = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), check))
    assert spec.blocking, f"{asset}:{check} must stop downstream assets when it fails"


def _run(paths, key):
    job = build_definitions(lake=LakeResource(root=paths.root)).resolve_job_def("hourly_ingestion")
    return job.execute_in_process(partition_key=key, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_good_hour_materializes_with_passing_checks_and_metadata(paths):
    write_batch(paths, KEY, [event(), event(), event(analytics=False)])
    res = _run(paths, KEY)
    assert res.success
    evals = {e.check_name: e.passed for e in res.get_asset_check_evaluations()}
    assert evals == {"gx_bronze_events": True, "gx_bronze_quarantine": True, "ledger_reconciles": True,
                     "volume_within_history": True, "schema_drift_at_landing": True,
                     "distribution_within_history": True, "quarantine_rate_within_history": True,
                     "gx_silver_events": True, "gx_silver_sessions": True, "gx_silver_identity_map": True}
    mats = {m.asset_key.to_user_string(): m for m in res.get_asset_materialization_events()}
    meta = mats["bronze/ingestion_ledger"].materialization.metadata
    assert meta["lines_landed"].value == 3 and meta["consent_dropped"].value == 1 and meta["bronze_rows"].value == 2

    # The run's hooks wrote the trust tables: every gate of the hour, and per asset its figures.
    from lake.trust import latest_gate_evaluations, read_asset_runs

    gates = latest_gate_evaluations(paths)
    assert sorted(gates["gate"].to_list()) == sorted(evals) and gates["passed"].all()
    assert set(gates["partition"].to_list()) == {KEY}
    assert gates["data_dates"].to_list()[0] == [date(2026, 11, 2)]
    runs = {r["asset"]: r for r in read_asset_runs(paths).iter_rows(named=True)}
    assert set(runs) == {"bronze/events", "bronze/quarantine", "bronze/ingestion_ledger", "silver/events",
                         "silver/identity_map", "silver/sessions"}
    bronze = runs["bronze/events"]
    assert (bronze["rows"], bronze["gates_failed"], bronze["reconciled"]) == (2, 0, True)
    assert bronze["gates_passed"] == 5  # gx_bronze_events in its step; volume, the drift and quarantine-rate gates
    assert bronze["quarantine_rate"] == 0.0 and bronze["freshness_lag_s"] > 0


def test_bad_batch_is_blocked_by_the_gate_and_absent_from_bronze(paths, capsys):
    # A third of the rows carry neither user_id nor anonymous_id: each row is contract-valid,
    # the batch is not (it would break identity stitching for everything downstream).
    good = [event() for _ in range(20)]
    anonymous = [event(anonymous_id=None, user_id=None) for _ in range(10)]
    write_batch(paths, KEY, good + anonymous)
    res = _run(paths, KEY)
    assert not res.success
    evals = {e.check_name: e for e in res.get_asset_check_evaluations()}
    assert evals["gx_bronze_events"].passed is False
    assert "identity_key" in (evals["gx_bronze_events"].description or "")

    bronze = (DeltaTable(paths.bronze_events).to_pyarrow_table() if DeltaTable.is_deltatable(paths.bronze_events)
              else None)
    assert bronze is None or bronze.num_rows == 0, "nothing of the bad batch may be visible in bronze"
    entry = read_entry(paths, KEY)
    assert entry.gate_status == "failed" and entry.held_for_audit == 30 and not entry.reconciled
    held = list(Path(paths.audit_holds).rglob("bronze_events.parquet"))
    assert len(held) == 1 and pq.read_table(held[0]).num_rows == 30  # kept for inspection

    assert cli(["status", "--root", paths.root]) == 1
    assert "failed" in capsys.readouterr().out

    # Once the source is fixed (collector redelivers the hour with ids), a rerun publishes.
    write_batch(paths, KEY, good + [event(anonymous_id="anon-fixed") for _ in range(10)])
    assert _run(paths, KEY).success
    assert DeltaTable(paths.bronze_events).to_pyarrow_table().num_rows == 30


def test_sensor_requests_a_run_when_an_hours_files_change(paths):
    from datetime import datetime, timedelta

    from lake.ingest import partition_key

    key = partition_key(datetime.now(UTC) - timedelta(hours=2))
    old = "2020-01-01-00:00"  # beyond the sensor's look-back: never re-requested
    write_batch(paths, key, [event()])
    write_batch(paths, old, [event()])
    sensor = build_definitions(lake=LakeResource(root=paths.root)).resolve_sensor_def("landing_files_sensor")
    with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(),
                                 resources={"lake": LakeResource(root=paths.root)}) as ctx:
        tick = sensor(ctx)
        first = tick.run_requests
        assert [r.partition_key for r in first] == [key]
        # the hour is observed once (landing/events' freshness and data version), not again while unchanged
        observed_first = [o for o in tick.asset_events if isinstance(o, dg.AssetObservation)]
        assert [(o.asset_key.to_user_string(), o.partition) for o in observed_first] == [("landing/events", key)]
        (verdict,) = [e for e in tick.asset_events if isinstance(e, dg.AssetCheckEvaluation)]  # judged, then requested
        assert verdict.check_name == "landing_hour_readable" and verdict.passed
        ctx.update_cursor(tick.cursor)
        again = sensor(ctx)
        assert again.run_requests[0].run_key == first[0].run_key  # same files: Dagster skips a repeated run key
        assert again.asset_events == []
        write_batch(paths, key, [event()], name="batch-2.jsonl")
        changed = sensor(ctx)
        assert changed.run_requests[0].run_key != first[0].run_key
        (observed,) = [o for o in changed.asset_events if isinstance(o, dg.AssetObservation)]
        assert observed.tags["dagster/data_version"] != observed_first[0].tags["dagster/data_version"]
        assert observed.metadata["files"].value == 2


def test_a_half_volume_hour_fails_the_volume_gate_and_silver_does_not_run(paths):
    from datetime import datetime, timedelta

    from lake.contracts import load_plan
    from lake.ingest import ingest_partition
    from lake.pii import PiiMasker, pii_key_from_env

    hour = datetime(2026, 11, 23, 14)  # a Monday
    history = [(hour - timedelta(weeks=w)) for w in range(1, 6)]
    masker = PiiMasker(pii_key_from_env(paths))
    for i, past in enumerate(history):  # five Mondays at 14:00 with ~200 events each
        ts = past.strftime("%Y-%m-%dT%H:10:00Z")
        key = past.strftime("%Y-%m-%d-%H:00")
        write_batch(paths, key, [event(ts=ts, received=ts) for _ in range(200 + i)])
        ingest_partition(paths, key, plan=load_plan(), masker=masker)
    ts = hour.strftime("%Y-%m-%dT%H:10:00Z")
    key = hour.strftime("%Y-%m-%d-%H:00")
    write_batch(paths, key, [event(ts=ts, received=ts) for _ in range(100)])  # half the usual volume

    res = _run(paths, key)
    evals = {e.check_name: e for e in res.get_asset_check_evaluations()}
    assert not evals["volume_within_history"].passed
    assert "50% below the median" in evals["volume_within_history"].description
    assert evals["ledger_reconciles"].passed  # nothing is lost: the events are in bronze, counted
    materialized = {m.asset_key.to_user_string() for m in res.get_asset_materialization_events()}
    assert "bronze/events" in materialized and "silver/events" not in materialized


def test_the_cli_stops_its_ingestion_workers_before_it_exits(paths):
    # `growthlake run` ends with os._exit. Had it left the ingestion worker pool running, the workers
    # would outlive the run holding its stdout open: a caller reading the output (a scheduler, a
    # script) would wait forever, and every hourly run would leave its processes behind.
    import os
    import subprocess
    import sys

    from lake.ingest import parallel

    if parallel._workers() < 2:
        pytest.skip("the worker pool needs two cores")
    write_batch(paths, KEY, [event() for _ in range(20)])
    env = {**os.environ, "GROWTHLAKE_ROOT": paths.root, "GROWTHLAKE_PARALLEL_MIN_BYTES": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "run", "--from", KEY, "--to", KEY,
                           "--no-warehouse", "--no-features", "--no-loops"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "landed     20" in proc.stdout and "gates ok" in proc.stdout

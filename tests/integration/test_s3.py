"""The same pipeline on an S3-compatible object store (moto on 127.0.0.1): nothing rewritten.

``GROWTHLAKE_ROOT=s3://<bucket>/lake`` plus the standard ``AWS_*`` settings; the landing zone and
every Delta table (bronze, ledger, silver, features, the message outbox) live in the bucket, and
only what must be a local file — the DuckDB warehouse, dbt's files, the writer locks, the online
store — lives in ``GROWTHLAKE_LOCAL_DIR``.

The pipeline is one test, phase by phase, on purpose: each phase needs the one before, and one
test keeps them on one pytest-xdist worker whatever the scheduler does.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import secrets
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest

from lake import delta_io
from lake.errors import ConfigError
from lake.ledger import read_ledger, verify_partition
from lake.paths import LakePaths
from lake.schemas import BRONZE_EVENTS, SILVER_EVENTS

pytestmark = pytest.mark.slow

HOURS = 10  # landing hours of the simulated day that are uploaded and ingested
VIOLATIONS = ("malformed_json", "missing_event_id", "invalid_timestamp", "unplanned_event", "required_missing",
              "datatype_mismatch", "disallowed_value", "unexpected_property")


def _s3(settings: dict[str, str]) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(access_key=settings["AWS_ACCESS_KEY_ID"], secret_key=settings["AWS_SECRET_ACCESS_KEY"],
                             region=settings["AWS_REGION"], endpoint_override=settings["AWS_ENDPOINT_URL"],
                             scheme="http", allow_bucket_creation=True)


def _objects(fs: pafs.S3FileSystem, prefix: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
    return [i.path[len(prefix) + 1:] for i in infos if i.type == pafs.FileType.File]


def _truth(manifest: dict, keys: list[str]) -> dict[str, int]:
    """What the simulator says a correct ingestion of these landing hours keeps, drops and quarantines."""
    faults = [manifest["faults_by_hour"].get(k, {}) for k in keys]
    truth = {"lines": sum(manifest["lines_by_hour"][k] for k in keys),
             "consent": sum(manifest["no_analytics_consent_by_hour"].get(k, 0) for k in keys),
             "duplicates": sum(f.get("duplicate", 0) for f in faults),
             "quarantined": sum(n for f in faults for kind, n in f.items() if kind in VIOLATIONS)}
    truth["bronze"] = truth["lines"] - truth["consent"] - truth["duplicates"] - truth["quarantined"]
    return truth


@pytest.fixture
def s3_root(s3_settings, tmp_path, monkeypatch, pii_key) -> tuple[LakePaths, pafs.S3FileSystem, str]:
    """A fresh bucket as the storage root, with a local folder beside it."""
    for name, value in s3_settings.items():
        monkeypatch.setenv(name, value)
    bucket = f"growthlake-{secrets.token_hex(4)}"
    monkeypatch.setenv("GROWTHLAKE_ROOT", f"s3://{bucket}/lake")
    monkeypatch.setenv("GROWTHLAKE_LOCAL_DIR", str(tmp_path / "local"))
    monkeypatch.delenv("GROWTHLAKE_LOCK_DIR", raising=False)
    fs = _s3(s3_settings)
    fs.create_dir(bucket)
    return LakePaths.from_root(), fs, bucket


def test_landing_to_marts_features_outbox_and_report_on_s3(s3_root, tmp_path):
    from growth_loops.actuation.messages import OutboxMessage, enqueue, outbox_path, pending
    from growth_loops.features import FeatureStore
    from growth_loops.report import build_report
    from lake.landing import list_landing_partitions
    from orchestration.definitions import build_definitions
    from orchestration.resources import LakeResource
    from simulation import simulate

    paths, fs, bucket = s3_root
    local = tmp_path / "local"
    assert paths.warehouse == str(local / "warehouse.duckdb") and paths.online_store.startswith(str(local))

    # Collectors deliver to the bucket; the simulator writes locally, so its files are uploaded:
    # the first HOURS landing hours of the day (a redelivery always lands after its original).
    # A fixed day: with the default (yesterday) the first hours' mix of lines changed with the date, and
    # on some days held no unconsented event.
    summary = simulate(tmp_path / "sim", users=60, days=1, seed=7, fault_rate=0.1, start=dt.date(2026, 12, 2))
    for folder in sorted(summary.landing_dir.glob("date=*/hour=*"))[:HOURS]:
        rel = folder.relative_to(summary.landing_dir).as_posix()
        pafs.copy_files(str(folder), f"{bucket}/lake/landing/events/{rel}", destination_filesystem=fs)
    keys = list_landing_partitions(paths)
    assert len(keys) == HOURS
    manifest = json.loads((summary.truth_dir / "manifest.json").read_text())
    truth = _truth(manifest, keys)
    assert truth["quarantined"] and truth["consent"] and truth["duplicates"], "the window holds every kind of line"

    defs, instance = build_definitions(lake=LakeResource(root=paths.root)), dg.DagsterInstance.ephemeral()

    def run(job: str, partition: str | None = None) -> dg.ExecuteInProcessResult:
        res = defs.resolve_job_def(job).execute_in_process(partition_key=partition, instance=instance,
                                                           raise_on_error=False)
        assert res.success, (job, partition)
        assert all(c.passed for c in res.get_asset_check_evaluations()), (job, partition)
        return res

    # 1. Every landing hour through the hourly job (bronze, ledger, silver, behind their gates).
    for key in keys:
        run("hourly_ingestion", key)
        rec = verify_partition(paths, key)
        assert rec.ok, (key, rec.detail)
    ledger = read_ledger(paths, keys)
    total = {c: pc.sum(ledger[c]).as_py() for c in ("lines_landed", "bronze_rows", "quarantined", "consent_dropped",
                                                    "duplicates_dropped")}
    assert (total["lines_landed"], total["bronze_rows"], total["quarantined"], total["consent_dropped"],
            total["duplicates_dropped"]) == (truth["lines"], truth["bronze"], truth["quarantined"], truth["consent"],
                                             truth["duplicates"])
    bronze = delta_io.read(paths.bronze_events, BRONZE_EVENTS, columns=["event_id"])
    assert bronze.num_rows == pc.count_distinct(bronze["event_id"]).as_py() == truth["bronze"]
    silver = delta_io.read(paths.silver_events, SILVER_EVENTS, columns=["event_id", "event_date", "person_id"])
    assert sorted(silver["event_id"].to_pylist()) == sorted(bronze["event_id"].to_pylist())
    stored = _objects(fs, f"{bucket}/lake")
    for table in ("bronze/events", "bronze/quarantine", "bronze/ingestion_ledger", "silver/events",
                  "silver/sessions", "silver/identity_map", "observability/gate_evaluations"):
        assert any(p.startswith(f"delta/{table}/_delta_log/") for p in stored), table
    # local: the writer locks and the dbt manifest the definitions were built from, nothing of the data
    assert {p.relative_to(local).parts[0] for p in local.rglob("*") if p.is_file()} <= {"_locks", "_dbt"}

    # 2. The nightly warehouse: dbt reads silver from the bucket and builds the local DuckDB file.
    run("nightly_warehouse")
    with duckdb.connect(paths.warehouse, read_only=True) as con:
        days = con.execute("select count(*) from marts.fct_daily_oec").fetchone()[0]
        in_warehouse = con.execute("select count(*) from silver.events").fetchone()[0]
        active = con.execute("select sum(active_users) from marts.fct_daily_oec").fetchone()[0]
        marts = con.execute("select * from marts.fct_daily_oec order by date_day").fetchall()
    assert days == len(set(silver["event_date"].to_pylist())) > 0
    assert in_warehouse == silver.num_rows and active > 0

    # 3. A rerun commits nothing to bronze or silver, and the marts rebuilt from them are the same.
    tables = (paths.bronze_events, paths.bronze_quarantine, paths.silver_events, paths.silver_sessions,
              paths.silver_identity_map)
    versions = {t: delta_io.version(t) for t in tables}
    for key in sorted(keys, key=lambda k: -manifest["lines_by_hour"][k])[:2]:  # the two busiest hours
        run("hourly_ingestion", key)
        assert verify_partition(paths, key).ok
    assert {t: delta_io.version(t) for t in tables} == versions, "a rerun committed data again"
    run("nightly_warehouse")
    with duckdb.connect(paths.warehouse, read_only=True) as con:
        assert con.execute("select * from marts.fct_daily_oec order by date_day").fetchall() == marts

    # 4. Features: the offline history in the bucket, the online store local.
    day = dt.date.fromisoformat(keys[0][:10])
    run("nightly_features", day.isoformat())
    store = FeatureStore(paths)
    assert day in store.published_days("user_features")
    assert any(p.startswith("delta/features/user_features/_delta_log/") for p in _objects(fs, f"{bucket}/lake"))
    assert Path(paths.online_store).is_file()

    # 5. The message outbox: enqueued once; an all-duplicate enqueue commits nothing.
    people = sorted(set(silver["person_id"].to_pylist()))[:5]
    msgs = [OutboxMessage(loop="trial_nudge", decision_id=f"d-{p}", decision_day=day, person_id=p,
                          template="trial_nudge") for p in people]
    first, again = enqueue(paths, msgs, consented=people), enqueue(paths, msgs, consented=people)
    assert (first.enqueued, again.enqueued, again.duplicates_skipped) == (len(people), 0, len(people))
    assert again.delta_version == first.delta_version
    assert outbox_path(paths).startswith(f"s3://{bucket}/") and pending(paths).height == len(people)

    # 6. The report: the OEC from the local warehouse, the rest from the bucket; written locally, uploaded.
    target = build_report(paths, data_docs=False)
    assert target == local / "reports" / "report.html"
    assert b"has not been built yet" not in target.read_bytes()
    with fs.open_input_stream(f"{bucket}/lake/reports/report.html") as uploaded:
        assert uploaded.readall() == target.read_bytes()


def _enqueue_as_another_machine(settings: dict[str, str], lock_dir: str, day: str, people: list[str], barrier) -> int:
    """A writer with its own lock folder (as on another machine), enqueueing the same messages."""
    os.environ.update(settings, GROWTHLAKE_LOCK_DIR=lock_dir)
    from growth_loops.actuation.messages import OutboxMessage, enqueue

    msgs = [OutboxMessage(loop="race", decision_id=f"d-{p}", decision_day=dt.date.fromisoformat(day), person_id=p,
                          template="race") for p in people]
    barrier.wait()
    inserted = 0
    for i in range(0, len(msgs), 3):  # small MERGEs, interleaving with the other writer's
        inserted += enqueue(LakePaths.from_root(), msgs[i:i + 3], consented=people).enqueued
    return inserted


def test_writers_on_two_machines_insert_each_message_once(s3_root, s3_settings, tmp_path):
    """Local locks do not span machines; the outbox's MERGE is conflict-checked by delta-rs instead —
    from the table's creation on (both writers start before it exists)."""
    from growth_loops.actuation.messages import MESSAGE_OUTBOX, outbox_path

    paths, _, _ = s3_root
    settings = {**s3_settings, "GROWTHLAKE_ROOT": paths.root, "GROWTHLAKE_LOCAL_DIR": str(tmp_path / "local")}
    people = [f"usr_race_{i:02d}" for i in range(24)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(2, mp_context=ctx) as pool:
        barrier = manager.Barrier(2)
        futures = [pool.submit(_enqueue_as_another_machine, settings, str(tmp_path / f"machine-{m}"), "2026-01-15",
                               people, barrier) for m in (1, 2)]
        inserted = [f.result(timeout=120) for f in futures]
    rows = delta_io.read(outbox_path(paths), MESSAGE_OUTBOX, columns=["message_id"])
    assert sum(inserted) == rows.num_rows == pc.count_distinct(rows["message_id"]).as_py() == len(people)


def test_an_object_store_root_needs_a_local_folder(monkeypatch):
    monkeypatch.delenv("GROWTHLAKE_LOCAL_DIR", raising=False)
    monkeypatch.delenv("GROWTHLAKE_LOCK_DIR", raising=False)
    paths = LakePaths.from_root("s3://bucket/lake")
    for attribute in ("warehouse", "locks", "dbt_dir", "online_store"):
        with pytest.raises(ConfigError, match="GROWTHLAKE_"):
            getattr(paths, attribute)
    monkeypatch.setenv("GROWTHLAKE_LOCK_DIR", "/tmp/growthlake-locks")
    assert paths.locks == "/tmp/growthlake-locks"
    local = LakePaths.from_root("/srv/lake")
    assert (local.warehouse, local.locks, local.dbt_dir) == ("/srv/lake/warehouse.duckdb", "/tmp/growthlake-locks",
                                                             "/srv/lake/_dbt")

"""Landing -> bronze on hand-made batches: every fault kind reconciles, reruns change nothing."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lake.ingest import ingest_partition
from lake.ledger import verify_partition
from tests.helpers import event, every_fault_batch, write_batch

KEY = "2026-11-02-05:00"


def _bronze_ids(paths) -> list[str]:
    return DeltaTable(paths.bronze_events).to_pyarrow_table(columns=["event_id"])["event_id"].to_pylist()


def test_batch_with_every_fault_kind_reconciles(paths, plan, masker):
    lines, expected = every_fault_batch()
    write_batch(paths, KEY, lines)
    result = ingest_partition(paths, KEY, plan=plan, masker=masker)
    led = result.ledger
    assert result.published, result.gates
    assert led.summary() == {k: expected[k] for k in ("lines_landed", "bronze_rows", "quarantined",
                                                      "consent_dropped", "duplicates_dropped")} | {
        "held_for_audit": 0, "reconciled": True}
    assert led.quarantined_by_reason == expected["by_reason"]
    rec = verify_partition(paths, KEY)
    assert rec.ok, rec.detail

    quarantine = DeltaTable(paths.bronze_quarantine).to_pyarrow_table()
    assert sorted(quarantine["line_number"].to_pylist()) == [8, 9, 10, 11, 12, 13, 14, 15, 16]
    assert set(quarantine["source_file"].to_pylist()) == {"date=2026-11-02/hour=05/batch-1.jsonl"}
    # the unconsented event is nowhere
    unconsented = lines[16]["event_id"]
    assert unconsented not in _bronze_ids(paths) and unconsented not in quarantine["event_id"].to_pylist()


def test_rerun_and_new_file_in_same_hour_are_exactly_once(paths, plan, masker):
    lines, expected = every_fault_batch()
    write_batch(paths, KEY, lines)
    first = ingest_partition(paths, KEY, plan=plan, masker=masker)
    again = ingest_partition(paths, KEY, plan=plan, masker=masker)
    assert (again.bronze_appended, again.quarantine_appended) == (0, 0)
    assert again.ledger.summary() == first.ledger.summary()
    # a late second file in the same hour: one new event, one redelivery of an event already in bronze
    fresh = event(props={"path": "/new"})
    write_batch(paths, KEY, [fresh, lines[0]], name="batch-2.jsonl")
    third = ingest_partition(paths, KEY, plan=plan, masker=masker)
    assert third.bronze_appended == 1
    assert third.ledger.lines_landed == expected["lines_landed"] + 2
    assert third.ledger.duplicates_dropped == expected["duplicates_dropped"] + 1
    ids = _bronze_ids(paths)
    assert len(ids) == len(set(ids)) == expected["bronze_rows"] + 1
    assert verify_partition(paths, KEY).ok


def test_duplicate_delivered_days_later_is_dropped_across_partitions(paths, plan, masker):
    original = event(ts="2026-11-02T05:10:00Z", received="2026-11-02T05:10:01Z")
    write_batch(paths, KEY, [original])
    late_key = "2026-11-04-17:00"
    redelivery = dict(original, received_at="2026-11-04T17:00:05Z")
    write_batch(paths, late_key, [redelivery, event(ts="2026-11-04T17:00:00Z", received="2026-11-04T17:00:01Z")])
    ingest_partition(paths, KEY, plan=plan, masker=masker)
    late = ingest_partition(paths, late_key, plan=plan, masker=masker)
    assert late.ledger.duplicates_dropped == 1 and late.ledger.bronze_rows == 1
    table = DeltaTable(paths.bronze_events).to_pyarrow_table(columns=["event_id", "_landing_partition"])
    mine = table.filter(pc.equal(table["event_id"], original["event_id"]))
    assert mine["_landing_partition"].to_pylist() == [KEY]  # kept once, where it first landed
    assert verify_partition(paths, late_key).ok


def test_partitions_ingested_out_of_order_still_keep_each_event_once(paths, plan, masker):
    original = event()
    write_batch(paths, KEY, [original])
    write_batch(paths, "2026-11-03-09:00", [dict(original, received_at="2026-11-03T09:00:00Z")])
    ingest_partition(paths, "2026-11-03-09:00", plan=plan, masker=masker)  # the redelivery first
    ingest_partition(paths, KEY, plan=plan, masker=masker)
    assert _bronze_ids(paths) == [original["event_id"]]
    assert verify_partition(paths, KEY).ok and verify_partition(paths, "2026-11-03-09:00").ok


def test_gzip_batches_and_empty_hours(paths, plan, masker):
    import gzip

    target = write_batch(paths, KEY, [event(), event()], name="batch-1.jsonl")
    gz = target.with_suffix(".jsonl.gz")
    gz.write_bytes(gzip.compress(target.read_bytes()))
    target.unlink()
    assert ingest_partition(paths, KEY, plan=plan, masker=masker).ledger.bronze_rows == 2
    empty = ingest_partition(paths, "2026-11-02-06:00", plan=plan, masker=masker)
    assert empty.ledger.lines_landed == 0 and empty.ledger.reconciled


def test_tampered_bronze_is_caught_by_the_ledger_check(paths, plan, masker):
    """The check recounts the tables: a doubled row (e.g. a foreign writer) fails it."""
    write_batch(paths, KEY, [event(), event()])
    ingest_partition(paths, KEY, plan=plan, masker=masker)
    from deltalake import write_deltalake

    table = DeltaTable(paths.bronze_events).to_pyarrow_table()
    write_deltalake(paths.bronze_events, table.slice(0, 1), mode="append", partition_by=["event_date"])
    rec = verify_partition(paths, KEY)
    assert not rec.ok
    assert "doubled event_ids" in rec.detail and "bronze holds 3 rows" in rec.detail


def test_bad_partition_key_is_a_clear_error(paths, plan, masker):
    from lake.errors import LandingPartitionError

    with pytest.raises(LandingPartitionError, match="2026-11-02-05:00"):
        ingest_partition(paths, "2026-11-02T05", plan=plan, masker=masker)
    from pathlib import Path

    assert not Path(paths.ingestion_ledger).exists(), "nothing may be written for a bad key"


def test_parallel_normalization_gives_the_same_rows_as_serial(paths, plan, masker, monkeypatch):
    """Big hours are normalized in worker processes; the result must not depend on it."""
    import lake.ingest.parallel as parallel
    from lake.ingest.pipeline import normalize_partition

    lines, _ = every_fault_batch()
    for i in range(3):
        write_batch(paths, KEY, lines + [event() for _ in range(50)], name=f"batch-{i}.jsonl")
    serial, _ = normalize_partition(paths, KEY, plan=plan, masker=masker)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    from lake.landing import list_landing_files

    assert parallel.runs_in_parallel(list_landing_files(paths, KEY))
    par, _ = normalize_partition(paths, KEY, plan=plan, masker=masker)
    drop = ["_ingested_at"]
    assert par.bronze.drop_columns(drop).equals(serial.bronze.drop_columns(drop))
    assert par.quarantine.drop_columns(["ingested_at"]).equals(serial.quarantine.drop_columns(["ingested_at"]))
    assert (par.lines_landed, par.consent_dropped) == (serial.lines_landed, serial.consent_dropped)


def test_timestamps_outside_the_calendar_are_quarantined_not_a_crash(paths, plan, masker):
    # 00:30 on 1 January of year 1 at +01:00 is before year 1 in UTC: converting it overflowed.
    odd = "0001-01-01T00:30:00+01:00"
    revoke = event("consent_updated", {"analytics": False}, ts=odd, user_id="u-1", analytics=False)
    lines = [event(ts=odd), revoke, event()]
    write_batch(paths, KEY, lines)
    led = ingest_partition(paths, KEY, plan=plan, masker=masker).ledger
    assert (led.lines_landed, led.bronze_rows, led.quarantined, led.consent_dropped) == (3, 1, 1, 1)
    assert led.quarantined_by_reason == {"invalid_timestamp": 1}
    assert verify_partition(paths, KEY).ok

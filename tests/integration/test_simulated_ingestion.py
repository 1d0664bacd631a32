"""Simulated product traffic with every collector fault, ingested: counts reconcile with the
simulator's ground truth, and no raw IP or email survives anywhere under the storage root."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lake.ingest import ingest_partition, list_landing_partitions
from lake.ledger import read_ledger, verify_partition
from simulation import simulate

pytestmark = pytest.mark.slow

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.])")
VIOLATIONS = ("malformed_json", "missing_event_id", "invalid_timestamp", "unplanned_event", "required_missing",
              "datatype_mismatch", "unexpected_property")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    import os
    import secrets

    root = tmp_path_factory.mktemp("simlake")
    os.environ["GROWTHLAKE_PII_KEY"] = secrets.token_hex(32)
    from lake.contracts import load_plan
    from lake.paths import LakePaths
    from lake.pii import PiiMasker, pii_key_from_env

    paths = LakePaths.from_root(root)
    summary = simulate(root, users=400, days=3, seed=11, fault_rate=0.06)
    plan, masker = load_plan(), PiiMasker(pii_key_from_env(paths))
    keys = list_landing_partitions(paths)
    results = [ingest_partition(paths, k, plan=plan, masker=masker) for k in keys]
    manifest = json.loads((Path(summary.truth_dir) / "manifest.json").read_text())
    return paths, keys, results, manifest


def test_every_fault_kind_was_injected(ingested):
    _, _, _, manifest = ingested
    for kind in (*VIOLATIONS, "duplicate", "late"):
        assert manifest["faults"][kind] > 0, kind
    assert manifest["no_analytics_consent"] > 0


def test_ledger_reconciles_with_ground_truth(ingested):
    paths, keys, results, manifest = ingested
    assert all(r.published for r in results)
    ledger = read_ledger(paths, keys)
    total = {c: pc.sum(ledger[c]).as_py() for c in
             ("lines_landed", "bronze_rows", "quarantined", "consent_dropped", "duplicates_dropped")}
    assert total["lines_landed"] == manifest["lines_written"]
    assert total["bronze_rows"] == manifest["events_written"]  # every clean, distinct event — late ones too
    assert total["consent_dropped"] == manifest["no_analytics_consent"]
    assert total["duplicates_dropped"] == manifest["faults"]["duplicate"]
    by_reason: dict[str, int] = {}
    for row in ledger.to_pylist():
        for reason, n in json.loads(row["quarantined_by_reason"]).items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    assert by_reason == {k: manifest["faults"][k] for k in VIOLATIONS}
    assert total["quarantined"] == sum(by_reason.values())
    for key in keys:
        rec = verify_partition(paths, key)
        assert rec.ok, (key, rec.detail)


def test_bronze_matches_the_clean_event_mix(ingested):
    paths, _, _, manifest = ingested
    bronze = DeltaTable(paths.bronze_events).to_pyarrow_table(columns=["event_id", "event_name"])
    assert pc.count_distinct(bronze["event_id"]).as_py() == bronze.num_rows
    counts = bronze.group_by("event_name").aggregate([("event_id", "count")])
    by_name = dict(zip(counts["event_name"].to_pylist(), counts["event_id_count"].to_pylist(), strict=True))
    assert by_name == manifest["events_by_name"]


def test_no_raw_ip_or_email_in_any_parquet_file_under_the_root(ingested):
    paths, _, _, _ = ingested
    root = Path(paths.root)
    # the raw values really were there in what landed
    landed = "\n".join(p.read_text(errors="replace") for p in (root / "landing").rglob("*.jsonl"))
    raw_ips, raw_emails = set(IPV4.findall(landed)), set(EMAIL.findall(landed))
    assert raw_ips and raw_emails

    files = list(root.rglob("*.parquet"))
    assert len(files) > 10
    for file in files:
        table = pq.read_table(file)
        for name in table.column_names:
            col = table[name]
            if pa.types.is_list(col.type):
                col = pc.list_flatten(col)
            if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
                continue
            for value in col.drop_null().to_pylist():
                assert not EMAIL.search(value), f"raw email in {file.relative_to(root)}:{name}"
                assert not IPV4.search(value), f"raw IP in {file.relative_to(root)}:{name}"
    # and the Delta logs (file statistics hold min/max values) carry none either
    logs = "\n".join(p.read_text() for p in root.rglob("_delta_log/*.json"))
    assert not (raw_ips & set(IPV4.findall(logs))) and not (raw_emails & set(EMAIL.findall(logs)))


def test_rerun_of_every_partition_changes_nothing(ingested):
    paths, keys, _, _ = ingested
    from lake.contracts import load_plan
    from lake.pii import PiiMasker, pii_key_from_env

    before = {uri: DeltaTable(uri).version() for uri in (paths.bronze_events, paths.bronze_quarantine)}
    plan, masker = load_plan(), PiiMasker(pii_key_from_env(paths))
    for key in keys[::7]:
        r = ingest_partition(paths, key, plan=plan, masker=masker)
        assert (r.bronze_appended, r.quarantine_appended) == (0, 0)
    assert {uri: DeltaTable(uri).version() for uri in before} == before

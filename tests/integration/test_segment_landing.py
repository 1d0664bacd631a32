"""Segment / RudderStack object-storage dumps in the landing zone -> bronze, quarantine and silver.

The same hour holds a Segment S3 dump (``<ts>.<id>.gz``), a RudderStack one (``.json.gz``) and a
canonical batch: the format is detected per file, and every line obeys the same rules — contract,
quarantine with its violation, PII, consent, exactly once, a reconciling ledger — and identify /
alias calls stitch devices to people in silver.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import orjson
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from lake.erasure.requests import pending_requests
from lake.ingest import ingest_partition, list_landing_files, parallel, partition_folder
from lake.ledger import verify_partition
from lake.silver import build_silver
from tests.helpers import UA_IPHONE, event, write_batch

KEY = "2026-11-02-05:00"
SEGMENT_OK = {"categoryPreferences": {"Analytics": True, "Advertising": False}}
RUDDER_OK = {"allowedConsentIds": ["analytics"], "deniedConsentIds": ["marketing"], "provider": "custom",
             "resolutionStrategy": "and"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def seg(type_: str, mid: str | None, *, consent: dict | None = SEGMENT_OK, rudder: dict | None = None,
        **fields) -> dict:
    ctx: dict = {"ip": "198.51.100.20", "userAgent": UA_IPHONE, "locale": "en-GB",
                 "library": {"name": "analytics.js", "version": "5.2.0"}}
    if consent is not None:
        ctx["consent"] = consent
    if rudder is not None:
        ctx["consentManagement"] = rudder
    ctx |= fields.pop("context", {})
    out = {"type": type_, "originalTimestamp": "2026-11-02T05:09:58.120Z", "timestamp": "2026-11-02T05:09:59.000Z",
           "sentAt": "2026-11-02T05:10:00.000Z", "receivedAt": "2026-11-02T05:10:01.000Z", "context": ctx,
           "integrations": {}, "channel": "client"}
    if mid is not None:
        out["messageId"] = mid
    return out | fields


def segment_dump() -> list[dict | bytes]:
    page_a1 = seg("page", "s-01", anonymousId="a1", name="Pricing", properties={"path": "/pricing", "title": "Pricing"})
    return [
        page_a1,
        seg("track", "s-02", event="Signed Up", userId="u1", anonymousId="a1",
            properties={"method": "email", "email": "ada.lovelace@example.com"}),
        seg("identify", "s-03", userId="u1", anonymousId="a2",
            traits={"email": "ada.lovelace@example.com", "firstName": "Ada", "favouriteColor": "teal"}),
        seg("page", "s-04", anonymousId="a2", properties={"url": "https://app.example.com/settings"}),
        seg("screen", "s-05", anonymousId="a3", name="Home"),
        seg("alias", "s-06", userId="u3", previousId="a4"),
        seg("page", "s-07", anonymousId="a4", properties={"path": "/docs"}),
        seg("group", "s-08", userId="u1", groupId="acct-1", traits={"name": "Analytical Engines", "employees": 3}),
        seg("track", "s-09", event="Order Completed", userId="u1", properties={"contact": "eve@example.org"}),
        seg("track", "s-10", event="Trial Started", userId="u1", properties={"plan": "pro", "trial_days": "fourteen"}),
        b'{"type": "track", "messageId": "s-11", "context": {"ip": "198.51.100.20"',
        seg("page", "s-12", consent=None, anonymousId="a6", properties={"path": "/"}),
        seg("page", "s-13", consent={"categoryPreferences": {"Analytics": False}}, anonymousId="a6",
            properties={"path": "/"}),
        page_a1,  # redelivered
        b"",
        seg("track", None, event="Feature Used", userId="u1", properties={"feature": "api"}),
        seg("track", "s-17", event="Segment Consent Preference Updated", userId="u1", anonymousId="a1",
            consent={"categoryPreferences": {"Analytics": False, "Advertising": False}}),
    ]


def rudder_dump() -> list[dict | bytes]:
    return [
        seg("identify", "r-01", consent=None, rudder=RUDDER_OK, userId="u5", anonymousId="a5",
            context={"traits": {"email": "grace@example.com"}}),
        seg("track", "r-02", consent=None, rudder=RUDDER_OK, event="Feature Used", userId="u5", anonymousId="a5",
            properties={"feature": "api", "duration_s": 12.5}),
        seg("page", "r-03", consent=None, rudder={"allowedConsentIds": [], "deniedConsentIds": ["analytics"]},
            anonymousId="a5", properties={"path": "/"}),
    ]


def _write_gz(paths, name: str, lines: list[dict | bytes]) -> None:
    folder = Path(paths.landing_events) / partition_folder(KEY)
    folder.mkdir(parents=True, exist_ok=True)
    raw = b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines) + b"\n"
    (folder / name).write_bytes(gzip.compress(raw))


@pytest.fixture
def landed(paths):
    _write_gz(paths, "1762060200000.b8f2c4e1.gz", segment_dump())  # Segment S3's naming
    _write_gz(paths, "1762060201000.src1.4d9a.json.gz", rudder_dump())  # RudderStack's naming
    canonical = [event(props={"path": "/c1"}, anonymous_id="c1"), event(props={"path": "/c2"}, anonymous_id="c2")]
    write_batch(paths, KEY, canonical, name="batch-1.jsonl")
    return {c["event_id"] for c in canonical}


def test_segment_and_rudderstack_dumps_reach_bronze_and_silver(paths, plan, masker, landed):
    assert len(list_landing_files(paths, KEY)) == 3
    result = ingest_partition(paths, KEY, plan=plan, masker=masker)
    led = result.ledger
    assert result.published, result.gates
    assert led.summary() == {"lines_landed": 21, "bronze_rows": 12, "quarantined": 4, "consent_dropped": 4,
                             "duplicates_dropped": 1, "held_for_audit": 0, "reconciled": True}
    assert led.quarantined_by_reason == {"unplanned_event": 1, "datatype_mismatch": 1, "malformed_json": 1,
                                         "missing_event_id": 1}
    rec = verify_partition(paths, KEY)
    assert rec.ok, rec.detail

    bronze = DeltaTable(paths.bronze_events).to_pyarrow_table().to_pylist()
    by_id = {r["event_id"]: r for r in bronze}
    assert set(by_id) == {"s-01", "s-02", "s-03", "s-04", "s-05", "s-06", "s-07", "s-08", "r-01", "r-02"} | landed
    assert {k: by_id[k]["event_name"] for k in ("s-01", "s-02", "s-03", "s-05", "s-06", "s-08", "r-02")} == {
        "s-01": "page_viewed", "s-02": "user_signed_up", "s-03": "user_identified", "s-05": "screen_viewed",
        "s-06": "user_aliased", "s-08": "user_grouped", "r-02": "feature_used"}
    # unconsented lines are nowhere; the redelivered page is kept once
    assert not {"s-12", "s-13", "s-17", "r-03"} & set(by_id)
    # PII: traits and properties marked pii are hashed, undeclared traits are not kept, IPs are hashed
    identified = orjson.loads(by_id["s-03"]["properties"])
    assert set(identified) == {"email", "first_name"} and all(HEX32.match(v) for v in identified.values())
    assert HEX32.match(orjson.loads(by_id["r-01"]["properties"])["email"])
    assert HEX32.match(orjson.loads(by_id["s-02"]["properties"])["email"])
    assert all(HEX32.match(r["ip_hash"]) for r in bronze)
    assert by_id["s-04"]["properties"] == '{"url":"https://app.example.com/settings","path":"/settings"}'
    assert (by_id["s-01"]["browser_family"], by_id["s-01"]["device_type"], by_id["s-01"]["locale"]) == \
        ("Safari", "mobile", "en-GB")
    assert by_id["s-01"]["consent_marketing"] is False and by_id["r-02"]["consent_marketing"] is False
    assert by_id["s-01"]["_source_file"] == "date=2026-11-02/hour=05/1762060200000.b8f2c4e1.gz"

    quarantine = DeltaTable(paths.bronze_quarantine).to_pyarrow_table()
    violations = zip(quarantine["line_number"].to_pylist(), quarantine["violation_type"].to_pylist(), strict=True)
    assert sorted(violations) == [
        (9, "unplanned_event"), (10, "datatype_mismatch"), (11, "malformed_json"), (16, "missing_event_id")]
    assert not any("eve@example.org" in line or "198.51.100.20" in line for line in quarantine["raw_line"].to_pylist())
    # the withdrawal of analytics consent became an erasure request for its sender
    assert [(r["user_id"], r["anonymous_id"]) for r in pending_requests(paths)] == [("u1", "a1")]

    again = ingest_partition(paths, KEY, plan=plan, masker=masker)
    assert (again.bronze_appended, again.quarantine_appended) == (0, 0)
    assert DeltaTable(paths.bronze_events).to_pyarrow_table().num_rows == 12

    build_silver(paths)
    identity = {r["anonymous_id"]: (r["user_id"], r["link_event_name"])
                for r in DeltaTable(paths.silver_identity_map).to_pyarrow_table().to_pylist()}
    assert identity == {"a1": ("u1", "user_signed_up"), "a2": ("u1", "user_identified"),
                        "a4": ("u3", "user_aliased"), "a5": ("u5", "user_identified")}
    silver = DeltaTable(paths.silver_events).to_pyarrow_table(columns=["event_id", "person_id"])
    person = dict(zip(silver["event_id"].to_pylist(), silver["person_id"].to_pylist(), strict=True))
    # anonymous events of a stitched device belong to the person; an unlinked device stays anonymous
    assert (person["s-01"], person["s-04"], person["s-07"], person["s-05"]) == ("u1", "u1", "u3", "anon:a3")
    assert silver.num_rows == 12 and pc.count_distinct(silver["event_id"]).as_py() == 12


def test_parallel_workers_map_segment_files_like_the_serial_path(paths, plan, masker, landed, monkeypatch):
    files = list_landing_files(paths, KEY)
    serial = parallel.normalize_files(paths, KEY, files, plan=plan, masker=masker)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    if not parallel.runs_in_parallel(files):
        pytest.skip("one core: no worker processes to compare with")
    pooled = parallel.normalize_files(paths, KEY, files, plan=plan, masker=masker)
    drop = ["_ingested_at"]
    assert pooled.bronze.drop(drop).equals(serial.bronze.drop(drop))
    assert pooled.quarantine.drop(["ingested_at"]).equals(serial.quarantine.drop(["ingested_at"]))
    assert (pooled.lines_landed, pooled.consent_dropped, len(pooled.revocations)) == (21, 4, 1)


def test_erasure_finds_a_person_in_segment_lines(paths, plan, masker):
    """A device linked only by a landed Segment identify (its other lines were never ingested: no
    consent) is erased with the person, as for canonical lines."""
    from lake.erasure import erase_person

    _write_gz(paths, "1762060200000.b8f2c4e1.gz", [
        seg("identify", "e-1", consent=None, userId="usr-9999", anonymousId="anon-9999"),  # dropped: no consent
        seg("page", "e-2", consent=None, anonymousId="anon-9999", properties={"path": "/"}),
        seg("page", "e-3", anonymousId="anon-8888", properties={"path": "/kept"}),
    ])
    ingest_partition(paths, KEY, plan=plan, masker=masker)
    erase_person(paths, "usr-9999", reason="test", masker=masker, plan=plan)
    [f] = list_landing_files(paths, KEY)
    remaining = [line for line in gzip.decompress(Path(f.path).read_bytes()).split(b"\n") if line]
    assert [orjson.loads(line)["messageId"] for line in remaining] == ["e-3"]
    assert verify_partition(paths, KEY).ok

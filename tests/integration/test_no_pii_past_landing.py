"""No raw PII past landing (issue 17): after ingestion and the silver build, no file under the root
outside ``landing/`` holds any of the personal values the landed lines carried — not in a column, a
quarantined line, a violation's detail, nor the column statistics of a Parquet footer or a Delta log."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from lake.ingest import ingest_partition
from lake.ledger import verify_partition
from lake.silver import build_silver
from tests.helpers import event, write_batch

KEY = "2026-11-02-05:00"
GRANTED = {"categoryPreferences": {"Analytics": True}}
EMAIL = "ada.lovelace@example.org"
ENCODED_EMAIL = "ada.lovelace%40example.org"
SESSION_EMAIL = "grace.hopper@example.net"
IP = "198.51.100.23"
LOCALE_IP = "203.0.113.99"
CONTEXT_IP = "203.0.113.7"  # tests.helpers.event's context.ip
PHONES = ["+14155550123", "(415) 555-0123", "415-555-0123", "020 7946 0958"]
RAW = [EMAIL, ENCODED_EMAIL, SESSION_EMAIL, IP, LOCALE_IP, CONTEXT_IP, *PHONES,
       "ada.lovelace", "grace.hopper", "555-0123", "555 0123", "7946 0958", "4155550123"]


def segment_page(mid: str, **fields) -> dict:
    ctx = {"ip": CONTEXT_IP, "consent": GRANTED, "locale": "en-GB", "sessionId": "sess-7"} | fields.pop("context", {})
    return {"type": "page", "messageId": mid, "anonymousId": "anon-7", "timestamp": "2026-11-02T05:10:00.000Z",
            "receivedAt": "2026-11-02T05:10:01.000Z", "context": ctx} | fields


def landed_lines() -> tuple[list, list]:
    segment = [
        segment_page("s-1", properties={"url": f"https://app.example.com/signup?email={ENCODED_EMAIL}&step=2",
                                        "title": f"my ip is {IP}."},
                     context={"sessionId": SESSION_EMAIL, "locale": LOCALE_IP}),
        segment_page("s-2", properties={"path": "/contact", "title": f"call {PHONES[1]} or {PHONES[3]}"}),
        segment_page("s-3", properties={"path": "/", "search": f"?tel={PHONES[0]}&alt={PHONES[2]}"}),
    ]
    with_session = event(props={"path": "/", "referrer": f"mailto:{EMAIL}"})
    with_session["session_id"] = SESSION_EMAIL
    with_session["context"]["locale"] = LOCALE_IP
    canonical = [
        with_session,
        event(f"{EMAIL} signed up", {}),  # unplanned: the detail quotes the name
        event(ts=f"call {PHONES[0]}"),  # invalid timestamp: quoted
        event("user_signed_up", {"method": IP, "email": EMAIL}),  # disallowed value: quoted
        event(props={"path": "/", PHONES[3]: SESSION_EMAIL}),  # unexpected property: named
        f'{{"event_id": "broken", "note": "{ENCODED_EMAIL} at {IP}. ring {PHONES[1]}"'.encode(),  # not JSON
    ]
    return segment, canonical


def texts_past_landing(root: Path):
    """Every file under the root but the landing zone, as text: raw bytes for all, plus for Parquet its
    decoded rows and its column statistics."""
    landing = root / "landing"
    for path in sorted(root.rglob("*")):
        if not path.is_file() or landing in path.parents:
            continue
        yield path, path.read_bytes().decode("utf-8", errors="replace")
        if path.suffix == ".parquet":
            pf = pq.ParquetFile(path)
            yield path, repr(pf.read().to_pylist())
            meta = pf.metadata
            stats = [meta.row_group(g).column(c).statistics for g in range(meta.num_row_groups)
                     for c in range(meta.num_columns)]
            yield path, repr([(s.min, s.max) for s in stats if s is not None and s.has_min_max])


def test_no_raw_pii_in_any_file_past_landing(paths, plan, masker):
    segment, canonical = landed_lines()
    write_batch(paths, KEY, segment, name="1762060200000.segment.jsonl")
    write_batch(paths, KEY, canonical, name="batch-1.jsonl")
    result = ingest_partition(paths, KEY, plan=plan, masker=masker)  # the real gates: none may trip
    assert result.published, result.gates
    assert result.ledger.summary() == {"lines_landed": 9, "bronze_rows": 4, "quarantined": 5, "consent_dropped": 0,
                                       "duplicates_dropped": 0, "held_for_audit": 0, "reconciled": True}
    assert verify_partition(paths, KEY).ok
    build_silver(paths)

    root = Path(paths.root)
    delta_logs = list(root.glob("delta/*/*/_delta_log/*.json"))
    assert any("bronze/events" in str(p) for p in delta_logs) and any("silver/events" in str(p) for p in delta_logs)
    # silver/events' log carries min/max statistics of client_session_id (bronze's staged commit counts rows only)
    assert any("client_session_id" in p.read_text() and "minValues" in p.read_text() for p in delta_logs)
    scanned = 0
    for path, text in texts_past_landing(root):
        scanned += 1
        for raw in RAW:
            assert raw not in text, f"{raw!r} in {path.relative_to(root)}"
    assert scanned > 20
    # the landing files, and only they, keep the lines as they came
    landing = "".join(p.read_text() for p in (root / "landing").rglob("*.jsonl"))
    assert all(raw in landing for raw in (EMAIL, ENCODED_EMAIL, SESSION_EMAIL, IP, LOCALE_IP, *PHONES))

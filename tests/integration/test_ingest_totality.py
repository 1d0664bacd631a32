"""Issue 17, end to end: lines that stopped their hour (an exception on every rerun, or a regex that
never returned) are quarantined with a reason, and the good events of the hour are published."""

from __future__ import annotations

import signal
from contextlib import contextmanager

import orjson
import pytest
from deltalake import DeltaTable

from lake.collector.protocol import landing_line
from lake.erasure.requests import pending_requests
from lake.ingest import ingest_partition
from lake.ledger import verify_partition
from lake.paths import LakePaths
from tests.helpers import event, write_batch

KEY = "2026-11-02-05:00"
GRANTED = {"categoryPreferences": {"Analytics": True}}


@contextmanager
def deadline(seconds: int):
    """Turn a hang into a failure (the quadratic scanner took hours on a 2 MB line); not a timing test."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def collected(message: dict) -> bytes:
    """The line ``growthlake collect`` lands for a message it accepted."""
    return landing_line(message, received_iso="2026-11-02T05:10:01.000Z", peer_ip="198.51.100.7",
                        max_message_bytes=32 << 10, where="body").rstrip(b"\n")


def _table(path: str) -> list[dict]:
    return DeltaTable(path).to_pyarrow_table().to_pylist() if DeltaTable.is_deltatable(path) else []


def test_lines_that_raised_are_quarantined_and_the_hour_is_published_once(paths, plan, masker):
    signed_in = {"type": "track", "event": "Signed In", "properties": {"method": "email"}}
    lines = [
        collected(signed_in | {"userId": "u1", "context": {"userAgent": "curl/8.0", "consent": GRANTED}}),
        # TypeError in parse_user_agent before issue 17
        collected(signed_in | {"userId": "u2", "context": {"userAgent": ["x"], "consent": GRANTED}}),
        # OverflowError: the revocation's time is before year 1 in UTC, and so is the event's
        collected({"type": "track", "event": "Segment Consent Preference Updated", "userId": "u3",
                   "timestamp": "0001-01-01T00+01",
                   "context": {"consent": {"categoryPreferences": {"Analytics": False}}}}),
        collected(signed_in | {"userId": "u4", "timestamp": "0001-01-01T00:30:00+01:00",
                               "context": {"consent": GRANTED}}),
        collected(signed_in | {"userId": "u5", "context": {"consent": GRANTED, "ip": {"v4": "198.51.100.9"}}}),
        collected(signed_in | {"userId": "u6", "context": {"userAgent": "curl/8.0", "consent": GRANTED}}),
    ]
    write_batch(paths, KEY, lines, name="1762060200000.collector.jsonl")
    first = ingest_partition(paths, KEY, plan=plan, masker=masker)
    assert first.published, first.gates
    assert first.ledger.summary() == {"lines_landed": 6, "bronze_rows": 2, "quarantined": 3, "consent_dropped": 1,
                                      "duplicates_dropped": 0, "held_for_audit": 0, "reconciled": True}
    assert first.ledger.quarantined_by_reason == {"invalid_field": 2, "invalid_timestamp": 1}
    assert sorted(r["user_id"] for r in _table(paths.bronze_events)) == ["u1", "u6"]
    assert [(r["user_id"], r["requested_at"] is not None) for r in pending_requests(paths)] == [("u3", True)]
    assert verify_partition(paths, KEY).ok

    again = ingest_partition(paths, KEY, plan=plan, masker=masker)
    assert (again.bronze_appended, again.quarantine_appended) == (0, 0)
    assert again.ledger.summary() == first.ledger.summary()
    assert len(_table(paths.bronze_events)) == 2 and len(_table(paths.bronze_quarantine)) == 3
    assert len(pending_requests(paths)) == 1


def test_a_two_megabyte_line_is_quarantined_as_too_long_and_a_long_one_is_masked_in_linear_time(paths, plan, masker):
    # Issue 17: a landed line with a 2 MB property value hung ingestion at 100% CPU (the email regex
    # of the PII masking was quadratic on long runs of word characters).
    two_mb = event(props={"path": "/", "blob": "a" * (2 << 20) + "@example.org"})
    long_but_allowed = event(props={"path": "/", "blob": "b" * 900_000 + " ada.lovelace@example.org"})
    write_batch(paths, KEY, [event(), two_mb, long_but_allowed, event()])
    with deadline(120):
        result = ingest_partition(paths, KEY, plan=plan, masker=masker)
    assert result.published, result.gates
    assert result.ledger.quarantined_by_reason == {"line_too_long": 1, "unexpected_property": 1}
    assert result.ledger.bronze_rows == 2 and result.ledger.reconciled and verify_partition(paths, KEY).ok
    rows = {r["violation_type"]: r for r in _table(paths.bronze_quarantine)}
    too_long = rows["line_too_long"]
    assert len(too_long["raw_line"]) <= 1024 and too_long["event_id"] is None and too_long["line_number"] == 2
    assert "GROWTHLAKE_MAX_LINE_BYTES" in too_long["detail"]
    kept = orjson.loads(rows["unexpected_property"]["raw_line"])  # masked, and still JSON for a replay
    assert "ada.lovelace@example.org" not in rows["unexpected_property"]["raw_line"]
    assert kept["event_name"] == "page_viewed"


def test_the_line_limit_is_a_setting(tmp_path, monkeypatch, pii_key, plan, masker):
    monkeypatch.setenv("GROWTHLAKE_MAX_LINE_BYTES", "2048")
    paths = LakePaths.from_root(tmp_path / "lake")
    assert paths.settings.max_line_bytes == 2048
    write_batch(paths, KEY, [event(), event(props={"path": "/" + "x" * 3000}), b" " * 3000, event()])
    result = ingest_partition(paths, KEY, plan=plan, masker=masker)
    assert result.ledger.quarantined_by_reason == {"line_too_long": 2}
    assert (result.ledger.lines_landed, result.ledger.bronze_rows) == (4, 2)
    assert verify_partition(paths, KEY).ok  # the recount counts an over-long blank line as ingestion does


@pytest.mark.parametrize("depth", [300, 1000])
def test_deep_nesting_in_a_landed_line_is_quarantined_or_kept_like_any_other(paths, plan, masker, depth):
    deep = b"[" * depth + b'"eve@example.org"' + b"]" * depth
    ok = orjson.dumps(event())
    write_batch(paths, KEY, [ok[:-1] + b',"extra":' + deep + b"}",
                             orjson.dumps(event()).replace(b'"path":"/pricing"', b'"path":"/","x":' + deep)])
    result = ingest_partition(paths, KEY, plan=plan, masker=masker)
    assert result.published and result.ledger.reconciled
    assert result.ledger.quarantined_by_reason == {"unexpected_property": 1} and result.ledger.bronze_rows == 1
    assert "eve@example.org" not in _table(paths.bronze_quarantine)[0]["raw_line"]

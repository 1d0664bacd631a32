"""Normalization is total: whatever a landed line holds, it ends in bronze, quarantine or the consent
count — never in an exception — and nothing personal survives in what is kept."""

from __future__ import annotations

import orjson
import pytest

from lake.collector.protocol import landing_line
from lake.contracts import load_plan
from lake.contracts.validate import EventValidator, parse_timestamp
from lake.ingest.formats import sniff
from lake.ingest.normalize import NormalizedBatch, Normalizer
from lake.ingest.segment import SegmentMapper, corrected_timestamp, load_segment_mapping, map_consent
from lake.pii import PiiMasker
from tests.helpers import event

PLAN = load_plan()
KEY = "2026-11-02-05:00"
SEGMENT = SegmentMapper(load_segment_mapping(), PLAN)
MASKER = PiiMasker(b"k" * 32)
OVERFLOWING = ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00.000001+00:01"]


def normalize(*lines: bytes | dict, convert=None, max_line_bytes: int | None = None) -> NormalizedBatch:
    norm = (Normalizer(PLAN, MASKER) if max_line_bytes is None
            else Normalizer(PLAN, MASKER, max_line_bytes=max_line_bytes))
    for number, line in enumerate(lines, 1):
        norm.add_line(line if isinstance(line, bytes) else orjson.dumps(line), "f.jsonl", number, KEY, convert)
    return norm.finish()


def outcome(batch: NormalizedBatch) -> tuple[int, dict[str, int], int]:
    return batch.bronze.num_rows, batch.quarantined_by_reason, batch.consent_dropped


def collector_line(message: dict) -> bytes:
    """The line ``growthlake collect`` lands for a message it accepted."""
    return landing_line(message, received_iso="2026-11-02T05:10:01.000Z", peer_ip="198.51.100.7",
                        max_message_bytes=32 << 10, where="body").rstrip(b"\n")


def test_a_user_agent_array_the_collector_accepts_is_quarantined_as_invalid_field():
    # Issue 17: this line raised TypeError in parse_user_agent, and its hour failed on every rerun.
    accepted = collector_line({"type": "track", "event": "Signed In", "userId": "u1", "properties": {"method": "email"},
                               "context": {"userAgent": ["x"],
                                           "consent": {"categoryPreferences": {"Analytics": True}}}})
    good = collector_line({"type": "track", "event": "Signed In", "userId": "u2", "properties": {"method": "email"},
                           "context": {"userAgent": "curl/8.0",
                                       "consent": {"categoryPreferences": {"Analytics": True}}}})
    batch = normalize(accepted, good, convert=SEGMENT)
    assert outcome(batch) == (1, {"invalid_field": 1}, 0)
    [detail] = batch.quarantine["detail"].to_pylist()
    assert "context.user_agent must be a string or null, got list" in detail


@pytest.mark.parametrize("field", ["ip", "user_agent", "locale"])
@pytest.mark.parametrize("value", [["x"], {"a": 1}, 42, True, 1.5])
def test_context_fields_of_the_wrong_json_type_are_invalid_field(field, value):
    ev = event()
    ev["context"][field] = value
    assert outcome(normalize(ev)) == (0, {"invalid_field": 1}, 0)


@pytest.mark.parametrize("when", OVERFLOWING)
@pytest.mark.parametrize("field", ["timestamp", "received_at"])
def test_a_timestamp_outside_years_1_to_9999_utc_is_invalid_timestamp(field, when):
    # Issue 17: these raised OverflowError (astimezone, or received_at +/- the allowed skew).
    ev = event()
    ev[field] = when
    assert parse_timestamp(when) is None
    assert outcome(normalize(ev)) == (0, {"invalid_timestamp": 1}, 0)


@pytest.mark.parametrize(("ts", "received"), [("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
                                              ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
                                              ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z")])
def test_the_skew_and_lateness_checks_do_not_overflow_at_the_ends_of_time(ts, received):
    batch = normalize(event(ts=ts, received=received))
    assert batch.bronze.num_rows + batch.quarantine.num_rows == 1


@pytest.mark.parametrize("analytics", [True, False])
def test_a_consent_revocation_with_an_overflowing_timestamp_is_still_captured(analytics):
    # Issue 17: "0001-01-01T00+01" raised OverflowError while the revocation was captured.
    ev = event("consent_updated", {"analytics": False}, user_id="u1", ts="0001-01-01T00+01", analytics=analytics)
    batch = normalize(ev)
    assert outcome(batch) == ((0, {"invalid_timestamp": 1}, 0) if analytics else (0, {}, 1))
    [revocation] = batch.revocations
    assert (revocation.user_id, revocation.requested_at) == ("u1", None)


@pytest.mark.parametrize("original", OVERFLOWING)
def test_segment_clock_skew_correction_that_overflows_is_no_timestamp(original):
    assert corrected_timestamp("0001-01-01T00:00:01Z", "9999-12-31T23:59:59Z", "2026-11-02T05:10:01Z") is None
    message = {"type": "track", "event": "Signed In", "userId": "u1", "messageId": "m1",
               "properties": {"method": "email"}, "originalTimestamp": original,
               "sentAt": "2026-11-02T05:10:00Z", "receivedAt": "2026-11-02T05:10:01Z",
               "context": {"consent": {"categoryPreferences": {"Analytics": True}}}}
    assert outcome(normalize(message, convert=SEGMENT)) == (0, {"invalid_timestamp": 1}, 0)


def _nested(depth: int, leaf: str = '"ada@example.org"') -> bytes:
    return b"[" * depth + leaf.encode() + b"]" * depth


@pytest.mark.parametrize("depth", [300, 1000])
def test_deeply_nested_values_anywhere_are_handled(depth):
    """orjson reads 1024 levels but writes 254; Python's repr and str stop near 1000."""
    deep = _nested(depth)
    ok = orjson.dumps(event())
    lines = [
        ok[:-1] + b',"extra":' + deep + b"}",  # an unknown top-level field of a valid event: bronze
        ok.replace(b'"path":"/pricing"', b'"path":' + deep),  # a property: datatype_mismatch
        ok.replace(b'"path":"/pricing"', b'"path":"/","x":' + deep),  # an unexpected property
        ok.replace(b'"locale":"en-US"', b'"locale":' + deep),  # a context field: invalid_field
        ok.replace(b'"event_name":"page_viewed"', b'"event_name":' + deep),  # the name: unplanned_event
    ]
    batch = normalize(*lines)
    assert outcome(batch) == (1, {"datatype_mismatch": 1, "unexpected_property": 1, "invalid_field": 1,
                                  "unplanned_event": 1}, 0)
    for raw_line in batch.quarantine["raw_line"].to_pylist():
        assert "ada@example.org" not in raw_line
        orjson.loads(raw_line)  # still JSON, so a replay can read it


@pytest.mark.parametrize("depth", [300, 1000])
def test_deeply_nested_segment_messages_are_handled(depth):
    deep = _nested(depth)
    consent = b'{"categoryPreferences": {"Analytics": true}}'
    lines = [
        b'{"type": ' + deep + b', "messageId": "m1"}',
        b'{"type": "identify", "messageId": "m2", "userId": "u1", "traits": {"email": ' + deep + b'}, '
        b'"timestamp": "2026-11-02T05:10:00Z", "receivedAt": "2026-11-02T05:10:01Z", '
        b'"context": {"consent": ' + consent + b', "traits": ' + deep + b', "library": ' + deep + b'}}',
        b'{"type": "page", "messageId": "m3", "anonymousId": "a1", "properties": {"url": ' + deep + b'}, '
        b'"context": {"consentManagement": {"allowedConsentIds": [' + deep + b', "analytics"], "deniedConsentIds": '
        + deep + b"}}}",
    ]
    batch = normalize(*lines, convert=SEGMENT)
    assert batch.lines_landed == 3 and batch.bronze.num_rows + batch.quarantine.num_rows + batch.consent_dropped == 3
    assert not any("ada@example.org" in line for line in batch.quarantine["raw_line"].to_pylist())


def test_unhashable_values_where_names_are_expected_are_handled():
    assert sniff({"type": ["track"]}) == "canonical"
    assert map_consent({"consentManagement": {"allowedConsentIds": [["analytics"], {"a": 1}, 7]}},
                       load_segment_mapping())["analytics"] is False
    lines = [{"type": {"a": 1}, "messageId": "m1", "event": ["x"]},
             {"type": "track", "event": {"n": 1}, "messageId": "m2"}]
    assert normalize(*lines, convert=SEGMENT).lines_landed == 2


def test_a_line_longer_than_the_limit_is_quarantined_unread_with_a_short_masked_prefix():
    long_value = "x" * 300 + " ada.lovelace@example.org " + "y" * 5000
    line = orjson.dumps(event(props={"path": "/", "note": long_value}))
    blank_but_long = b" " * 5000
    batch = normalize(line, blank_but_long, orjson.dumps(event()), max_line_bytes=4096)
    assert outcome(batch) == (1, {"line_too_long": 2}, 0) and batch.lines_landed == 3
    prefixes = batch.quarantine["raw_line"].to_pylist()
    assert all(len(p) <= 1024 for p in prefixes)
    assert "ada.lovelace" not in "".join(prefixes) and "example.org" not in "".join(prefixes)
    assert "GROWTHLAKE_MAX_LINE_BYTES" in batch.quarantine["detail"][0].as_py()


def test_quarantine_detail_raw_line_and_name_hold_no_raw_pii():
    from lake.pii import find_pii

    lines = [
        event("ada.lovelace@example.org has signed up", {}),  # unplanned: the name is quoted in the detail
        event(ts="call (415) 555-0123"),  # invalid timestamp, quoted
        event("user_signed_up", {"method": "198.51.100.23", "email": "x"}),  # disallowed value, quoted
        event(props={"path": "/", "ada.lovelace@example.org": "+14155550123"}),  # unexpected property, named
        b'{"event_id": "e1", "note": "my ip is 198.51.100.23. call 020 7946 0958"',  # malformed
        event(received="\x01198.51.100.23"),  # quoted with a control character before the address
    ]
    batch = normalize(*lines)
    assert batch.quarantine.num_rows == 6
    for column in ("detail", "raw_line", "event_name", "event_id"):
        for text in batch.quarantine[column].to_pylist():
            assert text is None or not find_pii(text), (column, text)
            assert text is None or not any(raw in text for raw in ("lovelace", "198.51", "555", "7946")), (column, text)


def test_session_id_locale_and_event_id_that_look_like_pii_are_hashed_in_bronze():
    ev = event(event_id="ada.lovelace@example.org")
    ev["session_id"] = "ada.lovelace@example.org"
    ev["context"]["locale"] = "198.51.100.23"
    [row] = normalize(ev).bronze.to_pylist()
    assert row["session_id"] == row["event_id"] == MASKER.hash("ada.lovelace@example.org")
    assert row["locale"] == MASKER.hash("198.51.100.23")
    plain = normalize(event()).bronze.to_pylist()[0]
    assert (plain["session_id"], plain["locale"]) == ("sess-1", "en-US")


def test_a_quarantined_line_replays_to_the_row_it_would_have_made():
    """Quarantine hashes what bronze hashes (the same way), so a replay after a plan fix agrees."""
    ev = event(props={"path": "/", "contact": "ada@example.org"}, event_id="e-ada@example.org")
    ev["session_id"] = "ada@example.org"
    ev["context"]["locale"] = "198.51.100.23"
    ev["context"]["user_agent"] = "Mozilla/5.0 (iPhone) ada@example.org"
    batch = normalize(ev)
    [row] = batch.quarantine.to_pylist()
    replayed = Normalizer(PLAN, MASKER, validator=EventValidator(PLAN))
    parsed = orjson.loads(row["raw_line"])
    del parsed["properties"]["contact"]  # the "fix": the property is dropped
    assert replayed.add_event(parsed, "f.jsonl", 1, KEY, already_masked=frozenset(row["masked_fields"])) == "bronze"
    del ev["properties"]["contact"]
    direct = normalize(ev).bronze.to_pylist()[0]
    again = replayed.finish().bronze.to_pylist()[0]
    for column in ("event_id", "session_id", "locale", "ip_hash", "browser_family", "device_type", "anonymous_id"):
        assert again[column] == direct[column], column

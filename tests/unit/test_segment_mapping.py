"""Segment / RudderStack messages -> canonical events: names, consent, times, ids, traits, detection."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
import yaml

from lake.contracts import load_plan
from lake.contracts.validate import EventValidator
from lake.ingest.formats import detect_format
from lake.ingest.normalize import Normalizer
from lake.ingest.segment import (
    DEFAULT_MAPPING_PATH,
    SegmentMapper,
    SegmentMapping,
    SegmentMappingError,
    load_segment_mapping,
    map_consent,
    snake_case,
)
from lake.landing import LandingFile
from lake.paths import LakePaths
from lake.pii import PiiMasker

PLAN = load_plan()
MAPPING = load_segment_mapping(DEFAULT_MAPPING_PATH)
MAP = SegmentMapper(MAPPING, PLAN)
GRANTED = {"categoryPreferences": {"Analytics": True, "Advertising": False}}


def msg(type_: str = "track", **fields) -> dict:
    base = {"type": type_, "messageId": "m-1", "anonymousId": "anon-1", "timestamp": "2026-11-02T05:10:00.000Z",
            "receivedAt": "2026-11-02T05:10:01.000Z", "context": {"ip": "203.0.113.7", "consent": GRANTED}}
    return base | fields


@pytest.mark.parametrize(("name", "expected"), [
    ("Order Completed", "order_completed"), ("Signed Up", "signed_up"), ("trialStarted", "trial_started"),
    ("Email Link Clicked", "email_link_clicked"), ("feature-used!", "feature_used"), ("page_viewed", "page_viewed"),
    ("  ", ""),
])
def test_snake_case(name, expected):
    assert snake_case(name) == expected


@pytest.mark.parametrize(("message", "event_name"), [
    (msg(event="Trial Started", properties={"plan": "pro", "trial_days": 14}), "trial_started"),  # default: snake_case
    (msg(event="Order Completed"), "order_completed"),  # not in the plan: quarantined as unplanned, not renamed
    (msg(event="Signed Up"), "user_signed_up"),  # the shipped mapping
    (msg(event="Signed In"), "user_logged_in"),
    (msg(event="Email Link Clicked"), "email_clicked"),
    (msg("page", properties={"path": "/"}), "page_viewed"),
    (msg("screen", name="Home"), "screen_viewed"),
    (msg("identify", userId="u-1"), "user_identified"),
    (msg("alias", userId="u-1", previousId="anon-1"), "user_aliased"),
    (msg("group", userId="u-1", groupId="g-1"), "user_grouped"),
    (msg("bogus"), None),
    (msg(event=None), None),
    (msg(event=["a list"]), None),
])
def test_event_names(message, event_name):
    assert MAP(message)["event_name"] == event_name


def test_shipped_mapping_targets_are_planned_events():
    assert MAPPING.targets() <= set(PLAN.events), MAPPING.targets() - set(PLAN.events)


def test_configured_name_with_property_renames():
    mapping = SegmentMapping.from_dict({"events": {"Registered": {"event": "user_signed_up",
                                                                  "properties": {"signup_method": "method"}}}})
    ev = SegmentMapper(mapping, PLAN)(msg(event="Registered", userId="u-1",
                                          properties={"signup_method": "github", "email": "ada@example.com"}))
    assert ev["event_name"] == "user_signed_up"
    assert ev["properties"] == {"method": "github", "email": "ada@example.com"}
    violation, _, _ = EventValidator(PLAN).check(ev)
    assert violation is None


def _ctx(**consent_fields) -> dict:
    return consent_fields


@pytest.mark.parametrize(("context", "expected"), [
    # Segment Consent Management: categoryPreferences (ids case-insensitive, missing = not granted)
    ({"consent": {"categoryPreferences": {"Analytics": True, "Advertising": True}}}, (True, True)),
    ({"consent": {"categoryPreferences": {"Analytics": True, "Advertising": False}}}, (True, False)),
    ({"consent": {"categoryPreferences": {"Analytics": False, "Marketing": True}}}, (False, True)),
    ({"consent": {"categoryPreferences": {"Functional": True}}}, (False, False)),
    ({"consent": {"categoryPreferences": {}}}, (False, False)),
    ({"consent": {"categoryPreferences": {"C0002": True, "C0004": False}}}, (True, False)),  # OneTrust ids
    ({"consent": {"categoryPreferences": {"Analytics": True, "Performance": False}}}, (False, False)),  # one denied
    # RudderStack: consentManagement allowed / denied ids
    ({"consentManagement": {"allowedConsentIds": ["analytics"], "deniedConsentIds": ["marketing"]}}, (True, False)),
    ({"consentManagement": {"allowedConsentIds": ["Analytics", "Advertising"], "deniedConsentIds": []}}, (True, True)),
    ({"consentManagement": {"allowedConsentIds": {"C0002": "Performance"}}}, (True, False)),  # legacy object form
    ({"consentManagement": {"allowedConsentIds": ["analytics"], "deniedConsentIds": ["analytics"]}}, (False, False)),
    ({"consentManagement": {"deniedConsentIds": ["analytics"]}}, (False, False)),
    # canonical booleans, taken as they are
    ({"consent": {"analytics": True, "marketing": False}}, (True, False)),
    ({"consent": {"analytics": False}}, (False, None)),
    # nothing stated: not granted (None) under when_missing: deny
    ({}, (None, None)),
    ({"consent": "yes"}, (None, None)),
])
def test_consent_mapping(context, expected):
    got = map_consent(context, MAPPING)
    assert (got["analytics"], got["marketing"]) == expected


def test_missing_consent_can_be_granted_by_configuration():
    granted = SegmentMapping.from_dict({"consent": {"when_missing": "grant"}})
    assert map_consent({}, granted) == {"analytics": True, "marketing": None}


def test_consent_preference_event_carries_the_choices_as_properties():
    ev = MAP(msg(event="Segment Consent Preference Updated", userId="u-1",
                 context={"consent": {"categoryPreferences": {"Analytics": False, "Advertising": True}}}))
    assert ev["event_name"] == "consent_updated"
    assert ev["properties"] == {"analytics": False, "marketing": True}
    # a withdrawal of analytics consent is captured as an erasure request, though the event is dropped
    norm = Normalizer(PLAN, PiiMasker(b"k" * 32))
    norm.add_line(orjson.dumps(msg(event="Segment Consent Preference Updated", userId="u-1",
                                   context={"consent": {"categoryPreferences": {"Analytics": False}}})),
                  "f.jsonl", 1, "2026-11-02-05:00", MAP)
    batch = norm.finish()
    assert (batch.consent_dropped, batch.bronze.num_rows, batch.quarantine.num_rows) == (1, 0, 0)
    assert [(r.user_id, r.anonymous_id) for r in batch.revocations] == [("u-1", "anon-1")]


def test_envelope_fields():
    ev = MAP(msg(event="Trial Started", userId=42, messageId=7, properties={"plan": "pro", "trial_days": 14},
                 context={"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (iPhone)", "locale": "de-DE",
                          "sessionId": 1730000000, "consent": GRANTED}))
    assert ev == {
        "event_id": "7", "event_name": "trial_started", "timestamp": "2026-11-02T05:10:00.000Z",
        "received_at": "2026-11-02T05:10:01.000Z", "user_id": "42", "anonymous_id": "anon-1",
        "session_id": "1730000000", "properties": {"plan": "pro", "trial_days": 14},
        "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (iPhone)", "locale": "de-DE",
                    "consent": {"analytics": True, "marketing": False}},
    }


@pytest.mark.parametrize(("times", "expected"), [
    ({"timestamp": "2026-11-02T05:10:00.000Z"}, "2026-11-02T05:10:00.000Z"),
    # no timestamp: Segment's skew correction, receivedAt - (sentAt - originalTimestamp): a device
    # clock 50 minutes fast, the event sent 30 s after it happened, received at 05:10:01
    ({"timestamp": None, "originalTimestamp": "2026-11-02T08:00:00.000+02:00",
      "sentAt": "2026-11-02T06:00:30.000Z"}, "2026-11-02T05:09:31.000Z"),
    ({"timestamp": None, "originalTimestamp": "2026-11-02T05:09:00.000Z"}, "2026-11-02T05:09:00.000Z"),
    ({"timestamp": None}, None),
])
def test_event_time(times, expected):
    assert MAP(msg(event="Trial Started") | times)["timestamp"] == expected


def test_identify_keeps_declared_traits_only_in_snake_case():
    ev = MAP(msg("identify", userId="u-1", traits={"email": "ada@example.com", "firstName": "Ada", "plan": "pro",
                                                   "address": {"city": "London"}, "favouriteColor": "blue"}))
    assert ev["properties"] == {"email": "ada@example.com", "first_name": "Ada", "plan": "pro"}
    assert (ev["user_id"], ev["anonymous_id"]) == ("u-1", "anon-1")
    assert EventValidator(PLAN).check(ev)[0] is None


def test_rudderstack_identify_reads_traits_from_context():
    ev = MAP(msg("identify", userId="u-1", context={"traits": {"email": "ada@example.com"}, "consent": GRANTED}))
    assert ev["properties"] == {"email": "ada@example.com"}


def test_all_traits_go_to_the_contract_when_configured():
    mapper = SegmentMapper(SegmentMapping.from_dict({"types": {"identify": "user_identified"}, "traits": "all"}), PLAN)
    ev = mapper(msg("identify", userId="u-1", traits={"favouriteColor": "blue"}))
    assert ev["properties"] == {"favourite_color": "blue"}
    assert EventValidator(PLAN).check(ev)[0].type == "unexpected_property"


def test_alias_and_group_link_ids():
    alias = MAP(msg("alias", userId="u-1", previousId="anon-9", anonymousId=None))
    assert (alias["user_id"], alias["anonymous_id"], alias["properties"]) == ("u-1", "anon-9", {})
    group = MAP(msg("group", userId="u-1", groupId=77, traits={"name": "Acme", "employees": 12, "mrr": 3}))
    assert group["properties"] == {"name": "Acme", "employees": 12, "group_id": "77"}
    assert EventValidator(PLAN).check(group)[0] is None


def test_page_fields_and_campaign_fill_only_declared_properties():
    page = MAP(msg("page", name="Pricing", category="Docs", properties={"url": "https://example.com/pricing?x=1"},
                   context={"campaign": {"source": "newsletter", "medium": "email", "name": "nov", "term": "t"},
                            "consent": GRANTED}))
    assert page["properties"] == {"url": "https://example.com/pricing?x=1", "name": "Pricing", "category": "Docs",
                                  "path": "/pricing", "utm_source": "newsletter", "utm_medium": "email",
                                  "utm_campaign": "nov"}
    assert EventValidator(PLAN).check(page)[0] is None
    # trial_started declares no utm_*: the campaign is not pushed into it (no unexpected_property)
    trial = MAP(msg(event="Trial Started", properties={"plan": "pro", "trial_days": 14},
                    context={"campaign": {"source": "x"}, "consent": GRANTED}))
    assert trial["properties"] == {"plan": "pro", "trial_days": 14}


@pytest.mark.parametrize("junk", [
    {}, {"type": "track"}, {"type": "page", "properties": "oops"}, {"type": "identify", "traits": [1, 2]},
    {"type": "group", "traits": None, "context": []}, {"type": ["track"], "event": {}},
    {"type": "page", "properties": {"url": "http://[::1"}}, {"type": "track", "event": "X", "context": {"consent": 1}},
    {"type": "alias", "previousId": {"a": 1}}, {"messageId": None, "timestamp": 3, "receivedAt": []},
])
def test_mapper_never_raises_and_the_contract_judges(junk):
    ev = MAP(junk)
    violation, _, _ = EventValidator(PLAN).check(ev)
    assert violation is not None


def test_mapping_file_errors_are_clear(tmp_path):
    with pytest.raises(SegmentMappingError, match="traits"):
        SegmentMapping.from_dict({"traits": "some"})
    with pytest.raises(SegmentMappingError, match="only"):
        SegmentMapping.from_dict({"types": {"track": "x"}})
    with pytest.raises(SegmentMappingError, match="when_missing"):
        SegmentMapping.from_dict({"consent": {"when_missing": "maybe"}})
    bad = tmp_path / "m.yaml"
    bad.write_text("events: [oops")
    with pytest.raises(SegmentMappingError, match="not valid YAML"):
        load_segment_mapping(bad)


def test_mapping_path_from_the_environment(tmp_path, monkeypatch):
    doc = yaml.safe_load(DEFAULT_MAPPING_PATH.read_text())
    doc["events"]["Order Completed"] = "payment_succeeded"
    custom = tmp_path / "mapping.yaml"
    custom.write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("GROWTHLAKE_SEGMENT_MAPPING", str(custom))
    mapped = SegmentMapper(load_segment_mapping(), PLAN)(msg(event="Order Completed"))
    assert mapped["event_name"] == "payment_succeeded"


# -- format detection, once per file ---------------------------------------------------------------
def _file(tmp_path: Path, name: str, lines: list[bytes]) -> tuple[LakePaths, LandingFile]:
    paths = LakePaths.from_root(tmp_path)
    folder = Path(paths.landing_events) / "date=2026-11-02" / "hour=05"
    folder.mkdir(parents=True, exist_ok=True)
    data = b"\n".join(lines) + b"\n"
    (folder / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return paths, LandingFile(str(folder / name), f"date=2026-11-02/hour=05/{name}", len(data))


@pytest.mark.parametrize(("name", "lines", "expected"), [
    ("s.jsonl", [orjson.dumps(msg())], "segment"),
    ("1732000000000.3f1a.gz", [b"", b"{not json", orjson.dumps(msg("identify", userId="u"))], "segment"),
    ("r.json.gz", [orjson.dumps({"type": "page", "anonymousId": "a"})], "segment"),
    ("c.jsonl", [orjson.dumps({"event_id": "e", "event_name": "page_viewed", "type": "track"})], "canonical"),
    ("m.jsonl", [b"[1, 2]", b"garbage"], "canonical"),
    ("empty.jsonl", [b""], "canonical"),
])
def test_detect_format(tmp_path, name, lines, expected):
    paths, f = _file(tmp_path, name, lines)
    assert detect_format(paths, f, mapping=MAPPING) == expected


def test_detect_format_follows_a_configured_file_rule(tmp_path):
    paths, f = _file(tmp_path, "vendor-1.jsonl", [orjson.dumps({"event_id": "e"})])
    rule = SegmentMapping.from_dict({"file_formats": {"vendor-*": "segment"}})
    assert detect_format(paths, f, mapping=rule) == "segment"

"""Contract validation: each violation type, on a real parsed event, named the way users see it."""

from __future__ import annotations

import copy

import pytest

from lake.contracts.validate import EventValidator, parse_timestamp
from lake.ingest.segment import corrected_timestamp
from tests.helpers import event


@pytest.fixture(scope="module")
def validator(plan):
    return EventValidator(plan)


def test_valid_event_passes_and_timestamps_are_utc(validator):
    violation, ts, received = validator.check(event(ts="2026-11-02T07:10:00+02:00", received="2026-11-02T05:10:01Z"))
    assert violation is None
    assert ts.isoformat() == "2026-11-02T05:10:00+00:00"
    assert received.tzinfo is not None


def _without_id():
    ev = event()
    del ev["event_id"]
    return ev


def _with_id(value):
    ev = event()
    ev["event_id"] = value
    return ev


@pytest.mark.parametrize(
    ("ev", "expected"),
    [
        (_without_id(), "missing_event_id"),
        (_with_id(""), "missing_event_id"),
        (_with_id(None), "missing_event_id"),
        (_with_id(123), "missing_event_id"),
        (event(ts="2026-11-02 05:10"), "invalid_timestamp"),
        (event(ts="2026-11-02T05:10:00"), "invalid_timestamp"),  # no offset: ambiguous
        (event(ts="2026-11-02T06:10:00Z"), "invalid_timestamp"),  # an hour after received_at
        (event(ts="2026-09-01T05:10:00Z"), "invalid_timestamp"),  # later than max_lateness_days
        (event("button_clicked", {}), "unplanned_event"),
        (event("user_signed_up", {"method": "email"}), "required_missing"),
        (event("user_signed_up", {"method": "email", "email": None}), "required_missing"),
        (event("onboarding_step_completed", {"step": "tour", "step_index": 2.0}), "datatype_mismatch"),
        (event("payment_succeeded", {"amount": "29.00", "currency": "USD", "invoice_id": "i1"}), "datatype_mismatch"),
        (event("feature_used", {"feature": "api", "duration_s": True}), "datatype_mismatch"),  # bool is not a number
        (event(props=["not", "an", "object"]), "datatype_mismatch"),
        (event(user_id=42), "datatype_mismatch"),
        (event("trial_started", {"plan": "gold", "trial_days": 14}), "disallowed_value"),
        (event("trial_started", {"plan": "pro", "trial_days": 400}), "disallowed_value"),
        (event(props={"path": "/", "colour": "red"}), "unexpected_property"),
    ],
)
def test_each_violation_type(validator, ev, expected):
    violation, _, _ = validator.check(ev)
    assert violation is not None and violation.type == expected, violation


def test_most_severe_violation_wins_and_detail_lists_all(validator):
    ev = event("user_signed_up", {"method": "fax", "extra": 1}, ts="garbage")
    violation, _, _ = validator.check(ev)
    assert violation.type == "invalid_timestamp"
    for word in ("required_missing", "disallowed_value", "unexpected_property", "user_signed_up.email"):
        assert word in violation.detail


def test_optional_property_may_be_null(validator):
    assert validator.check(event(props={"path": "/", "title": None}))[0] is None


def test_validator_does_not_mutate_the_event(validator):
    ev = event("user_signed_up", {"method": "email", "email": "a@b.co"})
    before = copy.deepcopy(ev)
    validator.check(ev)
    assert ev == before


@pytest.mark.parametrize("value", [None, 17, "", "2026-11-02", "yesterday", "2026-13-45T99:00:00Z",
                                   # outside years 1-9999 in UTC
                                   "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_parse_timestamp_rejects(value):
    assert parse_timestamp(value) is None


def test_a_timestamp_outside_the_calendar_is_quarantined_not_an_error(validator):
    violation, ts, _ = validator.check(event(ts="0001-01-01T00:30:00+01:00"))
    assert violation.type == "invalid_timestamp" and ts is None


def test_a_skew_correction_outside_the_calendar_is_no_time():
    assert corrected_timestamp("0001-01-02T00:00:00Z", "9999-12-31T00:00:00Z", "2026-11-02T05:10:01Z") is None
    assert corrected_timestamp("2026-11-02T05:10:00Z", "2026-11-02T05:10:00.500Z", "2026-11-02T05:10:01Z") == \
        "2026-11-02T05:10:00.500Z"

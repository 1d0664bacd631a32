"""Pure silver rules: which link decides a device's user, who an event belongs to, typed columns."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest

from lake.schemas import BRONZE_EVENTS, SILVER_EVENTS
from lake.silver import link_candidates, resolve_person, silver_events, update_identities


def ts(hhmm: str, day: int = 2) -> datetime:
    return datetime.fromisoformat(f"2026-11-{day:02d}T{hhmm}:00+00:00").astimezone(UTC)


def bronze(rows: list[dict]) -> pl.DataFrame:
    """Bronze-shaped frame; unspecified columns get plausible defaults."""
    full = []
    for i, r in enumerate(rows):
        t = r.get("event_ts", ts("10:00"))
        full.append({
            "event_id": r.get("event_id", f"e{i:03d}"), "event_name": r.get("event_name", "page_viewed"),
            "event_ts": t, "received_at": t, "event_date": t.date(), "user_id": r.get("user_id"),
            "anonymous_id": r.get("anonymous_id"), "session_id": "s", "properties": json.dumps(r.get("props", {})),
            "ip_hash": None, "browser_family": "Safari", "device_type": "mobile", "locale": "en-US",
            "consent_marketing": False, "plan_version": "1.0.0", "_landing_partition": "2026-11-02-10:00",
            "_source_file": "f", "_line_number": i, "_ingested_at": t,
        })
    return pl.from_arrow(pl.DataFrame(full).to_arrow().cast(BRONZE_EVENTS))  # type: ignore[return-value]


def row(event_id: str, name: str, user: str | None, anon: str | None, at: datetime) -> dict:
    return {"event_id": event_id, "event_name": name, "user_id": user, "anonymous_id": anon, "event_ts": at}


def test_earliest_linking_event_decides_and_ties_break_on_event_id():
    rows = bronze([
        row("b", "user_logged_in", "u2", "d1", ts("09:00")),
        row("a", "user_signed_up", "u1", "d1", ts("09:00")),
        row("c", "feature_used", "u3", "d1", ts("08:00", day=3)),
        row("d", "page_viewed", None, "d2", ts("07:00")),  # no user: no link
        row("e", "payment_succeeded", "u9", None, ts("07:00")),  # no device: no link
    ])
    links = link_candidates(rows)
    assert links.to_dicts() == [{"anonymous_id": "d1", "user_id": "u1", "linked_at": ts("09:00"),
                                 "link_event_id": "a", "link_event_name": "user_signed_up"}]
    # the same decision whatever order the rows come in
    assert link_candidates(rows.reverse()).equals(links)


def test_identity_update_keeps_the_earliest_link_and_reports_what_moved():
    existing = link_candidates(bronze([row("x", "user_logged_in", "u1", "d1", ts("12:00")),
                                       row("y", "user_signed_up", "u5", "d5", ts("08:00"))]))
    new = link_candidates(bronze([row("w", "user_signed_up", "u2", "d1", ts("11:00")),
                                  row("z", "user_logged_in", "u5", "d5", ts("09:00")),
                                  row("v", "user_signed_up", "u7", "d7", ts("09:00"))]))
    update = update_identities(existing, new)
    assert sorted(update.rows["anonymous_id"].to_list()) == ["d1", "d7"]  # d5 keeps its earlier link
    assert (update.added, update.changed) == (1, 1)
    assert update.previous_person == {"d1": "u1", "d7": "anon:d7"}
    again = update_identities(pl.concat([existing.filter(pl.col("anonymous_id") != "d1"), update.rows]), new)
    assert again.rows.height == 0 and again.previous_person == {}  # idempotent


def test_person_is_user_then_linked_user_then_anonymous_device():
    events = bronze([
        {"user_id": "u1", "anonymous_id": "d9"},  # carries a user: that user, whatever the device maps to
        {"anonymous_id": "d1"},
        {"anonymous_id": "d2"},
        {},
    ])
    identity = pl.DataFrame({"anonymous_id": ["d1", "d9"], "user_id": ["u7", "u8"]})
    assert resolve_person(events, identity)["person_id"].to_list() == ["u1", "u7", "anon:d2", None]


@pytest.mark.parametrize(("name", "props", "expected"), [
    ("payment_succeeded", {"amount": 29, "currency": "EUR", "invoice_id": "i", "plan": "pro"},
     {"revenue": 29.0, "currency": "EUR", "plan": "pro"}),
    ("subscription_started", {"plan": "team", "amount": 99.5, "currency": "USD"},
     {"revenue": None, "currency": "USD", "plan": "team"}),  # revenue counts payments only
    ("payment_failed", {"amount": 29, "currency": "GBP"}, {"revenue": None, "currency": "GBP", "plan": None}),
    ("onboarding_step_completed", {"step": "tour", "step_index": 5}, {"onboarding_step": "tour"}),
    ("feature_used", {"feature": "api", "duration_s": 3.5}, {"feature": "api"}),
    ("page_viewed", {"path": "/", "referrer": "https://news.ycombinator.com", "utm_source": "hn",
                     "utm_medium": "social", "utm_campaign": "launch"},
     {"referrer": "https://news.ycombinator.com", "utm_source": "hn", "utm_medium": "social",
      "utm_campaign": "launch"}),
    ("user_signed_up", {"method": "email", "email": "h", "utm_source": "google"}, {"utm_source": "google"}),
    ("email_clicked", {"campaign": "c", "email_id": "m", "utm_source": "x", "plan": "pro"},
     {"utm_source": None, "plan": None}),  # only the planned events feed a typed column
    ("payment_succeeded", {"amount": "n/a", "currency": "EUR"}, {"revenue": None, "currency": "EUR"}),  # no crash
])
def test_typed_columns(name, props, expected):
    out = silver_events(bronze([{"event_name": name, "props": props, "user_id": "u1"}]), pl.DataFrame(
        {"anonymous_id": [], "user_id": []}, schema={"anonymous_id": pl.String, "user_id": pl.String}))
    assert out.columns == SILVER_EVENTS.names
    row = out.to_dicts()[0]
    assert {k: row[k] for k in expected} == expected
    assert json.loads(row["properties"]) == props
    assert row["client_session_id"] == "s" and row["event_date"] == date(2026, 11, 2)

"""Message outbox in a real Delta table: each decided message queued once, only with consent, sent once."""

from __future__ import annotations

import datetime

import polars as pl
import pytest

from growth_loops.actuation import (
    MESSAGE_OUTBOX,
    ActuationError,
    OutboxMessage,
    enqueue,
    mark_sent,
    message_id,
    outbox_path,
    pending,
)
from lake import delta_io

DAY = datetime.date(2026, 11, 2)
NOW = datetime.datetime(2026, 11, 3, 6, 0, tzinfo=datetime.UTC)
PEOPLE = [f"p{i:03d}" for i in range(40)]
CONSENTED = frozenset(PEOPLE[::2])  # every other person has marketing consent


def _messages(day: datetime.date = DAY, people=PEOPLE, template: str = "winback_v1") -> list[OutboxMessage]:
    return [OutboxMessage(loop="winback", decision_id=f"dec-{day}-{p}", decision_day=day, person_id=p,
                          template=template, payload={"discount_pct": 10, "first_name_token": f"tok-{p}"})
            for p in people]


def _all_rows(paths) -> pl.DataFrame:
    frame = pl.from_arrow(delta_io.read(outbox_path(paths), MESSAGE_OUTBOX))
    assert isinstance(frame, pl.DataFrame)
    return frame


def test_enqueue_twice_sends_nothing_twice_and_skips_people_without_consent(paths):
    first = enqueue(paths, _messages(), consented=CONSENTED, now=NOW)
    assert (first.enqueued, first.duplicates_skipped, first.no_consent_skipped) == (20, 0, 20)
    version = delta_io.version(outbox_path(paths))
    assert first.delta_version == version

    again = enqueue(paths, _messages(), consented=CONSENTED, now=NOW + datetime.timedelta(hours=1))
    assert (again.enqueued, again.duplicates_skipped, again.no_consent_skipped) == (0, 20, 20)
    assert delta_io.version(outbox_path(paths)) == version  # an all-duplicate enqueue commits nothing

    rows = _all_rows(paths)
    assert rows.height == 20
    assert rows["message_id"].n_unique() == 20
    assert set(rows["person_id"]) == set(CONSENTED)  # nobody without consent is stored
    assert rows["created_at"].unique().to_list() == [NOW]  # the first enqueue's rows, untouched
    assert set(rows["status"]) == {"pending"} and rows["sent_at"].null_count() == 20
    assert set(rows["channel"]) == {"email"}


def test_partial_overlap_inserts_only_the_new_messages(paths):
    enqueue(paths, _messages(people=PEOPLE[:20]), consented=CONSENTED, now=NOW)
    result = enqueue(paths, _messages(people=PEOPLE), consented=CONSENTED, now=NOW)
    assert (result.enqueued, result.duplicates_skipped, result.no_consent_skipped) == (10, 10, 20)
    # another day, or another template the same day, is a different message
    other_day = enqueue(paths, _messages(day=DAY + datetime.timedelta(days=1), people=["p000"]), consented=CONSENTED)
    other_template = enqueue(paths, _messages(people=["p000"], template="winback_v2"), consented=CONSENTED)
    repeated = enqueue(paths, _messages(people=["p002", "p002"]), consented=CONSENTED)  # in-call duplicate
    assert other_day.enqueued == 1 and other_template.enqueued == 1
    assert (repeated.enqueued, repeated.duplicates_skipped) == (0, 2)
    rows = _all_rows(paths)
    assert rows.height == 22 and rows["message_id"].n_unique() == 22


def test_message_id_is_deterministic_and_stored(paths):
    msg = _messages(people=["p000"])[0]
    assert msg.message_id == message_id("winback", DAY, "p000", "winback_v1")
    assert msg.message_id != message_id("winback", DAY, "p000", "winback_v2")
    enqueue(paths, [msg], consented=pl.Series(["p000", None]))  # consent as a Series works too
    row = _all_rows(paths).row(0, named=True)
    assert row["message_id"] == msg.message_id
    assert row["decision_day"] == DAY and row["decision_id"] == f"dec-{DAY}-p000"
    assert row["payload"] == '{"discount_pct":10,"first_name_token":"tok-p000"}'


def test_pending_and_mark_sent_round_trip(paths):
    enqueue(paths, _messages(), consented=CONSENTED, now=NOW)
    enqueue(paths, _messages(day=DAY + datetime.timedelta(days=1)), consented=CONSENTED, now=NOW)
    queued = pending(paths)
    assert queued.height == 40
    assert pending(paths, decision_day=DAY).height == 20
    assert pending(paths, loop="other").height == 0

    batch = pending(paths, decision_day=DAY)["message_id"].to_list()[:15]
    sent_at = NOW + datetime.timedelta(minutes=5)
    assert mark_sent(paths, batch, sent_at) == 15
    version = delta_io.version(outbox_path(paths))

    later = sent_at + datetime.timedelta(hours=1)
    assert mark_sent(paths, batch, later) == 0  # idempotent: nothing new, no commit, first sent_at kept
    assert delta_io.version(outbox_path(paths)) == version

    left = pending(paths)
    assert left.height == 25
    assert not set(batch) & set(left["message_id"])
    sent = _all_rows(paths).filter(pl.col("status") == "sent")
    assert sorted(sent["message_id"]) == sorted(batch)
    assert sent["sent_at"].unique().to_list() == [sent_at]

    # re-running the day's decisions after sending: nothing is queued again
    rerun = enqueue(paths, _messages(), consented=CONSENTED, now=later)
    assert (rerun.enqueued, rerun.duplicates_skipped) == (0, 20)
    assert pending(paths).height == 25


def test_mark_sent_refuses_unknown_ids_and_marks_nothing(paths):
    enqueue(paths, _messages(), consented=CONSENTED, now=NOW)
    known = pending(paths)["message_id"].to_list()[:3]
    with pytest.raises(ActuationError, match="not in the outbox"):
        mark_sent(paths, [*known, "f" * 64], NOW)
    assert pending(paths).height == 20
    with pytest.raises(ActuationError, match="timezone-aware"):
        mark_sent(paths, known, datetime.datetime(2026, 11, 3, 6, 0))


def test_enqueue_with_nothing_to_write_creates_no_table(paths):
    result = enqueue(paths, _messages(), consented=set())
    assert (result.enqueued, result.no_consent_skipped, result.delta_version) == (0, 40, None)
    assert delta_io.open_table(outbox_path(paths)) is None
    assert pending(paths).height == 0
    assert outbox_path(paths).endswith("/delta/decisions/message_outbox")


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"person_id": ""}, "person_id"),
        ({"decision_day": datetime.datetime(2026, 11, 2, tzinfo=datetime.UTC)}, "not a date"),
        ({"channel": "sms"}, "channel"),
        ({"payload": {"when": datetime.date(2026, 1, 1)}}, "JSON"),
    ],
)
def test_malformed_messages_are_refused(kwargs, problem):
    base = {"loop": "winback", "decision_id": "d", "decision_day": DAY, "person_id": "p000",
            "template": "t", "payload": {}}
    with pytest.raises(ActuationError, match=problem):
        OutboxMessage(**{**base, **kwargs})

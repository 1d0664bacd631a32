"""Right to erasure, piece by piece: the id check, revocation capture, the table rewrite and its
history purge, redaction, JSON scrubbing, idempotent requests, and an empty lake."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from lake.erasure import InvalidSubject, UnknownPersonColumn, erase_person, validate_subject_id
from lake.erasure.delta_tables import REDACTED, check_columns, erase_table
from lake.erasure.requests import ERASURE_REQUESTS, record_requests
from lake.erasure.stores import _scrub_json
from lake.erasure.subject import Subject
from lake.ingest.normalize import ConsentRevocation, Normalizer
from tests.helpers import event

USER, ANON = "usr_00000000deadbeef", "8d7c2a4e-0000-4000-8000-00000000beef"


@pytest.mark.parametrize("bad", ["", "   ", " usr_1234", "usr_1234\n", "ab", "x" * 257, "usr\x00abcd", None, 42])
def test_bad_ids_are_refused_with_a_clear_message(bad):
    with pytest.raises(InvalidSubject, match="cannot erase"):
        validate_subject_id(bad)


def test_a_plain_id_is_accepted():
    assert validate_subject_id(USER) == USER


@pytest.mark.parametrize(
    ("props", "context_analytics", "captured", "fate"),
    [
        ({"analytics": False, "marketing": False}, False, True, "consent"),  # dropped, but the request is kept
        ({"analytics": False, "marketing": True}, True, True, "bronze"),  # sent while still consenting
        ({"analytics": True, "marketing": False}, True, False, "bronze"),  # only marketing changed
        ({"analytics": True, "marketing": True}, False, True, "consent"),  # its own context says no analytics
    ],
)
def test_consent_updated_without_analytics_is_captured_as_a_request(
    plan, masker, props, context_analytics, captured, fate
):
    norm = Normalizer(plan, masker)
    ev = event(
        "consent_updated",
        props,
        user_id=USER,
        anonymous_id=ANON,
        analytics=context_analytics,
        ts="2026-11-02T05:10:00Z",
    )
    assert norm.add_event(ev, "f.jsonl", 1, "2026-11-02-05:00", count_line=True) == fate
    batch = norm.finish()
    if captured:
        assert batch.revocations == [
            ConsentRevocation(
                USER, ANON, dt.datetime(2026, 11, 2, 5, 10, tzinfo=dt.UTC), ev["event_id"], "2026-11-02-05:00"
            )
        ]
    else:
        assert batch.revocations == []


def test_a_revocation_without_any_id_or_of_another_event_is_not_a_request(plan, masker):
    norm = Normalizer(plan, masker)
    norm.add_event(
        event("consent_updated", {"analytics": False, "marketing": False}, anonymous_id=None),
        "f.jsonl",
        1,
        "2026-11-02-05:00",
    )
    norm.add_event(
        event("page_viewed", {"path": "/", "analytics": False}, user_id=USER), "f.jsonl", 2, "2026-11-02-05:00"
    )
    norm.add_line(
        b'{"event_name": "consent_updated", "user_id": "usr_0000000000000001", '
        b'"properties": {"analytics": false}, "timestamp": "not a time"}',
        "f.jsonl",
        3,
        "2026-11-02-05:00",
    )
    assert [(r.user_id, r.requested_at) for r in norm.finish().revocations] == [("usr_0000000000000001", None)]


def test_requests_are_recorded_once_however_often_an_hour_is_ingested(paths):
    revs = [ConsentRevocation(USER, ANON, dt.datetime(2026, 11, 2, 5, tzinfo=dt.UTC), "ev-1", "2026-11-02-05:00")]
    assert record_requests(paths, revs) == 1
    assert record_requests(paths, revs + revs) == 0
    rows = DeltaTable(paths.erasure_requests).to_pyarrow_table().to_pylist()
    assert [(r["user_id"], r["anonymous_id"]) for r in rows] == [(USER, ANON)]
    assert set(rows[0]) == set(ERASURE_REQUESTS.names)


# -- Delta tables -------------------------------------------------------------------------------


def _subject() -> Subject:
    return Subject(given=USER).with_ids(users={USER}, anons={ANON}, events={"ev-mine-3"})


def _files_mention(folder: str, needles: list[str]) -> list[str]:
    hits = []
    for path in Path(folder).rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        text = json.dumps(pq.read_table(path).to_pylist(), default=str) if path.suffix == ".parquet" else ""
        if any(n.encode() in data or n in text for n in needles):
            hits.append(path.relative_to(folder).as_posix())
    return hits


def _events(rows: list[tuple[str, str | None, str | None, str]]) -> pa.Table:
    return pa.table(
        {
            "event_id": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "anonymous_id": [r[2] for r in rows],
            "properties": [r[3] for r in rows],
            "event_date": [dt.date(2026, 1, 1 + i % 2) for i in range(len(rows))],
        }
    )


def test_rows_are_deleted_mentions_redacted_and_the_history_purged(paths):
    uri = f"{paths.root}/delta/silver/events"
    for batch in (
        [("ev-mine-1", USER, ANON, "{}"), ("ev-other-1", "usr_0000000000000002", "a2", "{}")],
        [("ev-mine-2", None, ANON, "{}"), ("ev-other-2", "usr_0000000000000002", "a2", json.dumps({"ref": USER}))],
        [("ev-mine-3", None, None, "{}"), ("ev-other-3", "usr_0000000000000003", "a3", "{}")],  # by event id
    ):
        write_deltalake(uri, _events(batch), mode="append", partition_by=["event_date"])
    assert _files_mention(uri, [USER, ANON])

    res = erase_table(paths, "silver/events", _subject(), erasure_id="e1")

    assert (res.rows_removed, res.rows_redacted, res.history_purged) == (3, 1, True)
    rows = DeltaTable(uri).to_pyarrow_table().sort_by("event_id").to_pylist()
    assert [r["event_id"] for r in rows] == ["ev-other-1", "ev-other-2", "ev-other-3"]
    assert json.loads(rows[1]["properties"]) == {"ref": REDACTED}
    assert _files_mention(uri, [USER, ANON]) == []  # removed files, commit stats and predicates are gone
    log = sorted(os.listdir(f"{uri}/_delta_log"))
    assert any(name.endswith(".checkpoint.parquet") for name in log) and "00000000000000000000.json" not in log
    config = DeltaTable(uri).metadata().configuration
    assert config["delta.logRetentionDuration"] == "interval 30 days"  # set back after the purge

    again = erase_table(paths, "silver/events", _subject(), erasure_id="e2")
    assert (again.rows_removed, again.rows_redacted, again.history_purged) == (0, 0, False)


def test_the_audit_log_keeps_the_decision_with_the_person_redacted(paths):
    uri = f"{paths.root}/delta/decisions/audit_log"
    write_deltalake(
        uri,
        pa.table(
            {
                "decision_id": ["d1", "d2"],
                "person_id": [USER, "usr_0000000000000002"],
                "evidence": [json.dumps({"unit": USER}), "{}"],
                "action": ["nudge", "nudge"],
            }
        ),
    )
    res = erase_table(paths, "decisions/audit_log", _subject(), erasure_id="e1")
    assert (res.rows_removed, res.rows_redacted) == (0, 1)
    rows = DeltaTable(uri).to_pyarrow_table().sort_by("decision_id").to_pylist()
    assert rows[0] == {
        "decision_id": "d1",
        "person_id": REDACTED,
        "evidence": json.dumps({"unit": REDACTED}),
        "action": "nudge",
    }
    assert rows[1]["person_id"] == "usr_0000000000000002"


def test_quarantined_raw_lines_of_the_person_are_deleted(paths):
    uri = f"{paths.root}/delta/bronze/quarantine"
    write_deltalake(
        uri,
        pa.table(
            {
                "raw_line": [f'{{"user_id": "{USER}"', '{"user_id": "usr_0000000000000002"'],
                "event_id": [None, None],
                "masked_fields": [[], ["context.ip"]],
            }
        ),
    )
    assert erase_table(paths, "bronze/quarantine", _subject(), erasure_id="e1").rows_removed == 1
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 1


@pytest.mark.parametrize("column", ["customer_id", "member_key", "visitor_id", "account_ids", "profile_id", "email"])
def test_an_undeclared_person_key_stops_the_erasure(column):
    with pytest.raises(UnknownPersonColumn, match=column):
        check_columns("crm/contacts", pa.schema([(column, pa.string())]))


@pytest.mark.parametrize(
    "column", ["user_id", "event_name", "device_type", "decision_id", "session_id", "subject", "key"]
)
def test_known_columns_pass_the_check(column):
    check_columns("t", pa.schema([(column, pa.string())]))


def test_an_unknown_person_key_changes_nothing(paths, masker):
    uri = f"{paths.root}/delta/crm/contacts"
    write_deltalake(uri, pa.table({"customer_id": [USER], "note": ["x"]}))
    write_deltalake(
        f"{paths.root}/delta/silver/events", _events([("ev-mine-1", USER, ANON, "{}")]), partition_by=["event_date"]
    )
    with pytest.raises(UnknownPersonColumn):
        erase_person(paths, USER, reason="test", masker=masker)
    assert DeltaTable(f"{paths.root}/delta/silver/events").to_pyarrow_table().num_rows == 1


def test_json_documents_lose_the_ids_and_keep_their_shape():
    doc = {
        "features": {
            "f": {
                "rules": [
                    {"condition": {"id": {"$in": ["usr_0000000000000002", USER]}}, "force": "x", "note": f"for {USER}"}
                ]
            }
        },
        USER: 1,
    }
    assert _scrub_json(doc, _subject()) == {
        "features": {
            "f": {
                "rules": [
                    {"condition": {"id": {"$in": ["usr_0000000000000002"]}}, "force": "x", "note": f"for {REDACTED}"}
                ]
            }
        }
    }


def test_an_empty_lake_erases_nothing_and_records_the_request(paths, masker):
    report = erase_person(paths, USER, reason="nothing here", masker=masker)
    assert report.nothing_found and report.rows_removed == 0
    rows = DeltaTable(paths.erasures).to_pyarrow_table().to_pylist()
    assert len(rows) == 1 and rows[0]["erasure_id"] == report.erasure_id and USER not in json.dumps(rows, default=str)


def test_cli_refuses_an_empty_id_and_asks_before_erasing(paths, capsys, monkeypatch):
    from orchestration.cli import main

    assert main(["erase", "--root", paths.root, "--user", "", "--yes"]) == 2
    assert "it is empty" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main(["erase", "--root", paths.root, "--user", USER]) == 2
    assert "--yes" in capsys.readouterr().err
    assert not Path(paths.erasures).exists()  # nothing ran

    assert main(["erase", "--root", paths.root, "--user", USER, "--yes", "--reason", f"ticket for {USER}"]) == 0
    out = capsys.readouterr().out
    assert "nothing found" in out and USER not in out  # the output names no one
    (row,) = DeltaTable(paths.erasures).to_pyarrow_table().to_pylist()
    assert row["reason"] == "ticket for [subject]"


# -- exact matching ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "ids"),
    [
        (b'{"event_id": "e1", "user_id": "user-1", "anonymous_id": "d1"}', ("user-1", "d1", "e1")),
        (b'{"event_id": "e1", "user_id": null, "anonymous_id": "d1"}', (None, "d1", "e1")),
        (b'{"event_id": "e1", "user_id": {"id": "user-1"}, "anonymous_id": true}', (None, None, "e1")),  # no ids
        # Segment fields in a canonical file (ingestion quarantines the line; it is still user-1's)
        (b'{"messageId": "m1", "type": "track", "userId": "user-1", "anonymousId": "d1"}', ("user-1", "d1", "m1")),
        (b'{"type": "alias", "userId": "user-1", "previousId": "d0", "anonymousId": "d9"}', ("user-1", "d0", None)),
        (b'{"messageId": "m1", "userId": 1001}', ("1001", None, "m1")),  # numbers are ids (Segment's rule)
        # not JSON: the "field": value pairs still say whose it is
        (b'{"event_id": "m-10", "user_id": "user-10", "anonymous_id": "d10"', ("user-10", "d10", "m-10")),
        (b'{"messageId": "msg-1001-x", "anonymousId": "d\\"5", "path": "/1001', (None, 'd"5', "msg-1001-x")),
        (b"not json at all user-1", (None, None, None)),
    ],
)
def test_a_line_is_read_by_its_id_fields(line, ids):
    from lake.erasure.lines import parse_landed_line

    got = parse_landed_line(line, None)
    assert (got.user_id, got.anonymous_id, got.event_id) == ids


def test_segment_lines_are_read_as_ingestion_reads_them(plan):
    from lake.erasure.lines import parse_landed_line
    from lake.ingest.segment import SegmentMapper, load_segment_mapping

    mapper = SegmentMapper(load_segment_mapping(), plan)
    line = b'{"messageId": "m1", "type": "alias", "userId": 42, "previousId": "d0", "anonymousId": "d9"}'
    got = parse_landed_line(line, mapper)
    assert (got.user_id, got.anonymous_id, got.event_id, got.event["event_name"]) == ("42", "d0", "m1", "user_aliased")


@pytest.mark.parametrize(
    ("text", "mentioned"),
    [
        ("user-1", True),
        ('{"ref": "user-1"}', True),
        ("approved for user-1.", True),
        ("/users/user-1/settings", True),
        ("user-10", False),
        ("evt-user-1x", False),
        ("xuser-1", False),
        ("user-1.example", False),
        ("user-1@example.com", False),
        ("anon:d1", True),
        ("d10", False),
    ],
)
def test_a_mention_is_a_whole_token(text, mentioned):
    subject = Subject(given="user-1").with_ids(users={"user-1"}, anons={"d1"})
    assert subject.mentioned_in(text) is mentioned
    assert (subject.redact(text, REDACTED) != text) is mentioned


def test_an_unknown_id_mentions_nothing_and_rows_are_matched_exactly():
    from lake.erasure.delta_tables import owned_rows

    unknown = Subject(given="1001", user_ids=frozenset({"1001"}), known=False)
    assert not unknown.mentioned_in("/items/1001") and unknown.tokens == ()
    rows = pa.table(
        {
            "event_id": ["ev-1001", "e2", "e3", "e4"],
            "user_id": ["user-5", "1001", None, None],
            "anonymous_id": ["d5", "d5", "1001", None],
            "properties": ['{"path": "/items/1001"}', "{}", "{}", "{}"],
        }
    )
    assert owned_rows(rows, unknown).to_pylist() == [False, True, False, False]  # 1001 is a user id, not a device


def test_the_most_specific_id_decides_whose_row_it_is():
    from lake.erasure.delta_tables import owned_rows

    # user-2's devices: d2, and SHARED (which they linked first); user-3 uses SHARED too.
    subject = Subject(given="user-2", user_ids=frozenset({"user-2"}), anonymous_ids=frozenset({"d2", "shared"}),
                      shared_devices=frozenset({"shared"}), event_ids=frozenset({"e-mine"}))
    rows = pa.table(
        {
            "user_id": ["user-2", "user-3", None, None, "user-3", None, None],
            "person_id": [None, None, None, "user-3", None, None, None],
            "anonymous_id": ["shared", "shared", "shared", "shared", "d2", "other", None],
            "event_id": ["e1", "e2", "e3", "e4", "e5", "e6", "e-mine"],
        }
    )
    assert owned_rows(rows, subject).to_pylist() == [True, False, True, False, False, False, True]
    assert "shared" not in subject.tokens  # another person's device too: never searched in free text

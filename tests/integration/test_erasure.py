"""Right to erasure, end to end: a real lake (closed-loop simulation → landing → bronze/quarantine →
silver → features + online store → loops, outbox, audit log → dbt warehouse), one person erased, and
then proof — current rows, every byte of every file below the root (history included), untouched
neighbours, reconciling ledgers, a pipeline that keeps working — and the consent-revocation path
through Dagster.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from growth_loops.actuation.messages import MESSAGE_OUTBOX, outbox_path
from growth_loops.features import FeatureStore
from growth_loops.loops import approvals
from growth_loops.loops.runtime import LoopSettings
from lake import delta_io
from lake.erasure import ERASURES, erase_person, pending_requests
from lake.erasure.delta_tables import discover_tables
from lake.ingest import ingest_partition, list_landing_partitions
from lake.ledger import read_ledger, verify_partition
from lake.schemas import BRONZE_EVENTS
from lake.silver import build_silver
from lake.silver.state import unaudited_tables
from lake.warehouse import build_warehouse
from orchestration.closed_loop import run_closed_loop
from orchestration.definitions import build_definitions
from orchestration.resources import LakeResource
from simulation.closed_loop import ClosedLoopConfig
from tests.helpers import event, write_batch

pytestmark = pytest.mark.slow

START, DAYS = dt.date(2026, 3, 2), 5
EXTRA_HOUR, HELD_HOUR, NEW_HOUR = "2026-03-01-10:00", "2026-03-01-11:00", "2026-03-07-09:00"
OTHER = "usr_00000000000e7a11"  # a neighbour whose rows must survive
IDENTITY = ("user_id", "anonymous_id", "person_id")


# -- proof helpers ----------------------------------------------------------------------------------


def _texts(value) -> str:
    return json.dumps(value, default=str)


def byte_scan(root: str, ids: list[str]) -> list[str]:
    """Every file below ``root`` that holds one of ``ids``: raw bytes, gunzipped bytes, decoded
    Parquet values (data files, removed files, checkpoints), and query results of DuckDB and SQLite
    files (their pages may be compressed)."""
    needles = [i.encode() for i in ids]
    hits = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            data = Path(path).read_bytes()
            found = any(n in data for n in needles)
            if name.endswith(".gz"):
                found |= any(n in gzip.decompress(data) for n in needles)
            if name.endswith(".parquet"):
                found |= any(i in _texts(pq.read_table(path).to_pylist()) for i in ids)
            if name.endswith(".duckdb"):
                con = duckdb.connect(path, read_only=True)
                try:
                    for schema, table in con.execute(
                        "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
                    ).fetchall():
                        rows = con.execute(f'select * from "{schema}"."{table}"').fetchall()
                        found |= any(i in _texts(rows) for i in ids)
                finally:
                    con.close()
            if name.endswith(".sqlite"):
                con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                try:
                    for (table,) in con.execute("select name from sqlite_master where type = 'table'").fetchall():
                        found |= any(i in _texts(con.execute(f'select * from "{table}"').fetchall()) for i in ids)
                finally:
                    con.close()
            if found:
                hits.append(os.path.relpath(path, root))
    return sorted(hits)


def read_delta(paths, table: str) -> pl.DataFrame:
    frame = pl.from_arrow(DeltaTable(f"{paths.root}/delta/{table}").to_pyarrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def person_rows(frame: pl.DataFrame, exact: set[str], ids: list[str]) -> tuple[int, int]:
    """(rows that are the person's: identity column or raw line; rows that only mention them)."""
    own = pl.lit(False)
    mention = pl.lit(False)
    for name, dtype in frame.schema.items():
        if dtype == pl.String:
            col = pl.col(name)
            if name in IDENTITY:
                own = own | col.is_in(list(exact)).fill_null(False)
            elif name == "raw_line":
                own = own | pl.any_horizontal([col.str.contains(i, literal=True) for i in ids]).fill_null(False)
            else:
                mention = mention | pl.any_horizontal([col.str.contains(i, literal=True) for i in ids]).fill_null(False)
    flags = frame.select(own.alias("own"), (mention & ~own).alias("mention"))
    return int(flags["own"].sum()), int(flags["mention"].sum())


def landed_lines(paths) -> tuple[int, int]:
    """(non-blank landed lines, blank lines) over the whole landing zone."""
    full = blank = 0
    for path in Path(paths.landing_events).rglob("*.jsonl*"):
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        full += sum(1 for line in lines if line.strip())
        blank += sum(1 for line in lines if not line.strip())
    return full, blank


def warehouse_counts(paths) -> dict[str, int]:
    con = duckdb.connect(paths.warehouse, read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
        ).fetchall()
        return {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in tables}
    finally:
        con.close()


def warehouse_person_rows(paths, ids: list[str]) -> dict[str, int]:
    con = duckdb.connect(paths.warehouse, read_only=True)
    out = {}
    try:
        for schema, table in con.execute(
            "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE'"
        ).fetchall():
            rows = con.execute(f'select * from "{schema}"."{table}"').fetchall()
            n = sum(1 for r in rows if any(i in _texts(r) for i in ids))
            if n:
                out[f"{schema}.{table}"] = n
    finally:
        con.close()
    return out


def online_counts(paths, ids: list[str]) -> dict[str, tuple[int, int]]:
    """Per online-store table: (rows, rows mentioning the person)."""
    con = sqlite3.connect(f"file:{paths.online_store}?mode=ro", uri=True)
    try:
        out = {}
        for (t,) in con.execute("select name from sqlite_master where type = 'table'").fetchall():
            rows = con.execute(f'select * from "{t}"').fetchall()
            out[t] = (len(rows), sum(1 for r in rows if any(i in _texts(r) for i in ids)))
        return out
    finally:
        con.close()


@dataclass
class _Held:
    success: bool = False

    def summary(self) -> str:
        return "held on purpose by the test"

    def to_metadata(self) -> dict:
        return {}


def _held_auditor(suite, batch, parameters):
    return _Held()


def _versions(paths) -> dict[str, int]:
    return {t: DeltaTable(f"{paths.root}/delta/{t}").version() for t in discover_tables(paths)}


# -- the lake --------------------------------------------------------------------------------------


def build_lake(paths, plan, masker) -> None:
    def approve(day, runs):
        for run in runs:
            if run.status == "awaiting_approval":
                approvals.approve(paths, run.loop, run.policy_version, actor="maria@growth", reason="reviewed")

    config = ClosedLoopConfig(
        arrivals_per_day=150,
        trial_days=3,
        extra_sessions_per_day=0.6,
        actions_per_session=1.0,
    )
    run_closed_loop(
        paths, start=START, days=DAYS, seed=3, config=config, settings=LoopSettings(holdout_share=0.1), on_day=approve
    )


def pick_person(paths) -> tuple[str, list[str]]:
    """A person with events, sessions, features, decisions and an outbox message."""
    outbox = pl.from_arrow(delta_io.read(outbox_path(paths), MESSAGE_OUTBOX))
    events = read_delta(paths, "silver/events").group_by("person_id").len()
    user = outbox.join(events, on="person_id").sort(["len", "person_id"], descending=True)["person_id"][0]
    anons = read_delta(paths, "silver/identity_map").filter(pl.col("user_id") == user)["anonymous_id"].to_list()
    assert anons, "the person signed up from a device"
    return user, anons


def add_faulty_hours(paths, plan, masker, user: str, anon: str) -> None:
    """The person's lines in every fate: bronze, duplicate, quarantine (malformed + contract), consent
    drop, a gzip batch, and a batch a gate held — beside a neighbour's lines."""
    ts, rec = "2026-03-01T10:05:00Z", "2026-03-01T10:05:01Z"
    mine = event("page_viewed", {"path": "/erase-me"}, user_id=user, anonymous_id=anon, ts=ts, received=rec)
    theirs = event(
        "page_viewed", {"path": "/keep-me"}, user_id=OTHER, anonymous_id="anon-neighbour-1", ts=ts, received=rec
    )
    malformed = (
        f'{{"event_id": "malformed-1", "event_name": "page_viewed", "user_id": "{user}", "anonymous_id": "{anon}"'
    ).encode()  # no closing brace: malformed JSON
    write_batch(
        paths,
        EXTRA_HOUR,
        [
            mine,
            theirs,
            mine,  # the second copy of mine is a duplicate
            malformed,
            event("button_clicked", {}, user_id=user, anonymous_id=anon, ts=ts, received=rec),  # unplanned: quarantined
            event("button_clicked", {}, user_id=OTHER, anonymous_id="anon-neighbour-1", ts=ts, received=rec),
            event(user_id=user, anonymous_id=anon, analytics=False, ts=ts, received=rec),  # dropped for consent
        ],
        name="manual-1.jsonl",
    )
    gz_lines = [
        event("page_viewed", {"path": "/gz"}, user_id=user, anonymous_id=anon, ts=ts, received=rec),
        event("page_viewed", {"path": "/gz"}, user_id=OTHER, anonymous_id="anon-neighbour-1", ts=ts, received=rec),
    ]
    folder = Path(paths.landing_events, "date=2026-03-01", "hour=10")
    (folder / "manual-2.jsonl.gz").write_bytes(gzip.compress(b"\n".join(orjson.dumps(e) for e in gz_lines) + b"\n"))
    ingest_partition(paths, EXTRA_HOUR, plan=plan, masker=masker)

    ts, rec = "2026-03-01T11:05:00Z", "2026-03-01T11:05:01Z"
    write_batch(
        paths,
        HELD_HOUR,
        [
            event("page_viewed", {"path": "/held"}, user_id=user, anonymous_id=anon, ts=ts, received=rec),
            event(
                "page_viewed", {"path": "/held"}, user_id=OTHER, anonymous_id="anon-neighbour-1", ts=ts, received=rec
            ),
        ],
        name="manual-3.jsonl",
    )
    held = ingest_partition(paths, HELD_HOUR, plan=plan, masker=masker, auditor=_held_auditor)
    assert held.held_at is not None


def test_erase_person_removes_every_trace_and_the_lake_keeps_working(paths, plan, masker):
    build_lake(paths, plan, masker)
    user, anons = pick_person(paths)
    add_faulty_hours(paths, plan, masker, user, anons[0])
    build_silver(paths)
    build_warehouse(paths)
    FeatureStore(paths).close()

    ids = [user, *anons]
    exact = {user, *anons, *(f"anon:{a}" for a in anons)}
    tables = discover_tables(paths)
    assert {
        "bronze/events",
        "bronze/quarantine",
        "bronze/ingestion_ledger",
        "silver/events",
        "silver/identity_map",
        "silver/sessions",
        "features/user_features",
        "features/_rollup_events",
        "decisions/audit_log",
        "decisions/message_outbox",
        "loops/trial_nudge/decisions",
    } <= set(tables)
    before = {t: read_delta(paths, t) for t in tables}
    expected_removed, expected_redacted = {}, {}
    for t, frame in before.items():
        own, mention = person_rows(frame, exact, ids)
        if t == "decisions/audit_log":
            own, mention = 0, own + mention
        if own:
            expected_removed[t] = own
        if mention:
            expected_redacted[t] = mention
    # The person is everywhere the test means to check.
    for t in (
        "bronze/events",
        "bronze/quarantine",
        "silver/events",
        "silver/identity_map",
        "silver/sessions",
        "features/user_features",
        "features/user_sessions",
        "features/_rollup_events",
        "decisions/message_outbox",
    ):
        assert expected_removed.get(t, 0) > 0, t
    assert expected_redacted.get("decisions/audit_log", 0) > 0
    assert byte_scan(paths.root, ids), "the scan finds the person before the erasure"
    wh_before, wh_person = warehouse_counts(paths), warehouse_person_rows(paths, ids)
    assert wh_person.get("marts.dim_users") == 1
    lines_before, blanks_before = landed_lines(paths)
    online_before = online_counts(paths, ids)

    report = erase_person(
        paths, user, reason=f"ticket 4711 from {user}", requested_at=dt.datetime(2026, 3, 7, tzinfo=dt.UTC)
    )

    # (c) exactly the person's rows went; neighbours are untouched.
    assert report.tables == expected_removed
    assert report.redacted == expected_redacted
    for t, frame in before.items():
        after = read_delta(paths, t)
        if t in ("bronze/ingestion_ledger", "governance/erasures", "silver/_build_state", "features/_rollup_state"):
            continue  # bookkeeping rewritten by design
        published = 1 if t == "bronze/events" else 0  # re-deriving the held hour published the neighbour's line
        assert after.height == frame.height - expected_removed.get(t, 0) + published, t
    audit = read_delta(paths, "decisions/audit_log")
    assert audit.filter(pl.col("person_id") == "erased").height == expected_redacted["decisions/audit_log"]
    assert read_delta(paths, "bronze/events").filter(pl.col("user_id") == OTHER).height == 3  # /keep-me, /gz, /held
    assert read_delta(paths, "bronze/quarantine").filter(pl.col("raw_line").str.contains(OTHER)).height == 1
    assert report.warehouse == wh_person
    wh_after = warehouse_counts(paths)
    assert wh_after == {t: n - wh_person.get(t, 0) for t, n in wh_before.items()}
    lines_after, blanks_after = landed_lines(paths)
    assert lines_after == lines_before - report.landing_lines_removed
    assert blanks_after == blanks_before + report.landing_lines_removed  # blanked in place: numbering kept
    assert report.landing_lines_removed >= 9 and report.online_rows >= 1
    online_after = online_counts(paths, ids)
    assert report.online_rows == sum(mine for _, mine in online_before.values()) > 0
    assert online_after == {t: (n - mine, 0) for t, (n, mine) in online_before.items()}

    # (a) no current row of any Delta table holds an id.
    for t in discover_tables(paths):
        frame = read_delta(paths, t)
        assert person_rows(frame, exact, ids) == (0, 0), t
    # (b) no byte of any file below the root does — history, log, checkpoints, landing, holds,
    # simulator truth, flags documents, warehouse, online store and its WAL included.
    assert byte_scan(paths.root, ids) == []
    assert not list(Path(paths.root).rglob(".*erasing-*"))

    # (d) every landing hour still reconciles (the rewritten ones re-derived, the held one published now).
    for key in read_ledger(paths).column("landing_partition").to_pylist():
        check = verify_partition(paths, key)
        assert check.ok, (key, check.detail)
    assert EXTRA_HOUR in report.ledger_partitions and HELD_HOUR in report.ledger_partitions

    # (f) the record exists and holds no raw id.
    record = read_delta(paths, "governance/erasures")
    assert record.height == 1 and record["erasure_id"][0] == report.erasure_id
    assert record["rows_removed"][0] == report.rows_removed == sum(expected_removed.values())
    assert "[subject]" in record["reason"][0]
    assert not any(i in _texts(record.to_dicts()) for i in ids)
    assert set(record.columns) == set(ERASURES.names)

    # Idempotent: a second erasure finds nothing and changes nothing but its own record.
    versions = _versions(paths)
    again = erase_person(paths, user, reason="repeat")
    assert again.nothing_found and again.rows_removed == 0
    assert {t: v for t, v in _versions(paths).items() if t != "governance/erasures"} == {
        t: v for t, v in versions.items() if t != "governance/erasures"
    }
    assert erase_person(paths, "usr_ffffffffffffffff", reason="unknown id").nothing_found

    # (e) the pipeline keeps working, exactly once: a new hour, silver, features, warehouse.
    assert unaudited_tables(paths) == []
    silver_before = read_delta(paths, "silver/events").height
    new = [
        event(
            "page_viewed",
            {"path": f"/after/{i}"},
            user_id=OTHER,
            anonymous_id="anon-neighbour-1",
            ts="2026-03-07T09:10:00Z",
            received="2026-03-07T09:10:01Z",
        )
        for i in range(3)
    ]
    write_batch(paths, NEW_HOUR, new, name="after-erasure.jsonl")
    first = ingest_partition(paths, NEW_HOUR, plan=plan, masker=masker)
    assert first.ledger.reconciled and first.bronze_appended == 3
    build_silver(paths)
    assert ingest_partition(paths, NEW_HOUR, plan=plan, masker=masker).bronze_appended == 0  # rerun: nothing twice
    build_silver(paths)
    silver = read_delta(paths, "silver/events")
    # + the 3 new events, + the neighbour's line of the held hour that the erasure's re-derivation published.
    assert silver.height == silver_before + 3 + 1 and silver["event_id"].n_unique() == silver.height
    assert silver.filter((pl.col("user_id") == OTHER) & pl.col("properties").str.contains("/held")).height == 1
    assert verify_partition(paths, NEW_HOUR).ok
    store = FeatureStore(paths)
    try:
        results = store.materialize(START + dt.timedelta(days=DAYS - 1))
    finally:
        store.close()
    assert all(r.status in ("published", "unchanged") for r in results), [(r.view, r.status) for r in results]
    build_warehouse(paths)
    assert byte_scan(paths.root, ids) == []


# -- consent revocation through Dagster ---------------------------------------------------------------

REVOKER, REVOKER_ANON = "usr_0000000000c0ffee", "anon-revoker-device"


def test_consent_revocation_at_ingestion_is_erased_by_the_dagster_asset(paths):
    day1, day2 = "2026-05-04-08:00", "2026-05-04-09:00"
    ts1, ts2 = "2026-05-04T08:10:00Z", "2026-05-04T09:10:00Z"
    lines = [
        event("page_viewed", {"path": f"/p{i}"}, user_id=None, anonymous_id=REVOKER_ANON, ts=ts1, received=ts1)
        for i in range(3)
    ]
    lines.append(
        event(
            "user_signed_up",
            {"method": "email", "email": "revoker.c0ffee@example.com"},
            user_id=REVOKER,
            anonymous_id=REVOKER_ANON,
            ts=ts1,
            received=ts1,
        )
    )
    lines += [
        event("page_viewed", {"path": f"/n{i}"}, user_id=OTHER, anonymous_id="anon-neighbour-1", ts=ts1, received=ts1)
        for i in range(4)
    ]
    write_batch(paths, day1, lines)
    revoke = event(
        "consent_updated",
        {"analytics": False, "marketing": False},
        user_id=REVOKER,
        anonymous_id=REVOKER_ANON,
        ts=ts2,
        received=ts2,
        analytics=False,
    )
    write_batch(
        paths,
        day2,
        [
            revoke,
            event("page_viewed", {"path": "/n9"}, user_id=OTHER, anonymous_id="anon-neighbour-1", ts=ts2, received=ts2),
        ],
    )

    defs = build_definitions(lake=LakeResource(root=paths.root))
    instance = dg.DagsterInstance.ephemeral()
    hourly = defs.resolve_job_def("hourly_ingestion")
    for key in (day1, day2):
        assert hourly.execute_in_process(partition_key=key, instance=instance).success
    assert read_delta(paths, "silver/events").filter(pl.col("person_id") == REVOKER).height == 4
    # The revocation was dropped for consent (never stored as an event) but captured as a request.
    assert read_delta(paths, "bronze/events").filter(pl.col("event_name") == "consent_updated").is_empty()
    pending = pending_requests(paths)
    assert [(r["user_id"], r["anonymous_id"]) for r in pending] == [(REVOKER, REVOKER_ANON)]

    res = defs.resolve_job_def("nightly_erasures").execute_in_process(instance=instance)
    assert res.success
    assert {e.check_name: e.passed for e in res.get_asset_check_evaluations()} == {"erased_subjects_absent": True}
    meta = res.get_asset_materialization_events()[0].materialization.metadata
    assert meta["requests_processed"].value == 1 and meta["rows_removed"].value > 0

    assert pending_requests(paths) == []
    for t in discover_tables(paths):
        assert person_rows(
            read_delta(paths, t), {REVOKER, REVOKER_ANON, f"anon:{REVOKER_ANON}"}, [REVOKER, REVOKER_ANON]
        ) == (0, 0), t
    # The request's raw ids too (history included), and the raw email of the sign-up line in landing.
    assert byte_scan(paths.root, [REVOKER, REVOKER_ANON, "revoker.c0ffee@example.com"]) == []
    assert read_delta(paths, "silver/events").filter(pl.col("person_id") == OTHER).height == 5
    record = read_delta(paths, "governance/erasures")
    assert record.height == 1 and "consent" in record["reason"][0]
    for key in list_landing_partitions(paths):
        assert verify_partition(paths, key).ok, key
    # The next night finds nothing to do; the next hour still ingests.
    assert defs.resolve_job_def("nightly_erasures").execute_in_process(instance=instance).success
    assert read_delta(paths, "governance/erasures").height == 1

    # A writer that puts one of the revoker's rows back (received before the erasure) fails the
    # erasure's blocking check, naming the table (never the person).
    other = read_delta(paths, "bronze/events").filter(pl.col("user_id") == OTHER).head(1)
    back = other.with_columns(pl.lit(REVOKER).alias("user_id"), pl.lit("evt-put-back").alias("event_id"))
    delta_io.append(paths.bronze_events, back.to_arrow().cast(BRONZE_EVENTS))
    res = defs.resolve_job_def("nightly_erasures").execute_in_process(instance=instance, raise_on_error=False)
    assert not res.success
    [check] = res.get_asset_check_evaluations()
    assert check.check_name == "erased_subjects_absent" and not check.passed
    assert check.metadata["rows_remaining/bronze/events"].value == 1
    assert REVOKER not in (check.description or "")


def test_revocations_survive_parallel_normalization(paths, plan, masker, monkeypatch):
    """Big hours are normalized in worker processes: their captured requests are merged in line order."""
    from lake.ingest import parallel
    from lake.ingest.pipeline import normalize_partition
    from lake.landing import list_landing_files

    key = "2026-11-02-05:00"
    for i in range(3):
        batch = [event(props={"path": f"/{j}"}) for j in range(20)]
        batch.append(
            event("consent_updated", {"analytics": False, "marketing": False}, user_id=f"usr_{i:016x}", analytics=False)
        )
        write_batch(paths, key, batch, name=f"batch-{i}.jsonl")
    serial, _ = normalize_partition(paths, key, plan=plan, masker=masker)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    assert parallel.runs_in_parallel(list_landing_files(paths, key))
    par, _ = normalize_partition(paths, key, plan=plan, masker=masker)
    assert (
        [r.user_id for r in par.revocations]
        == [r.user_id for r in serial.revocations]
        == [f"usr_{i:016x}" for i in range(3)]
    )
    assert par.revocations == serial.revocations


# -- exact erasure: ids are matched whole, shared devices keep the other user's events ------------------
#
# A small lake built by hand, so that every landed line has a known owner: canonical lines, a gzip
# batch, a Segment dump, quarantined and malformed lines, a consent drop, silver, features (and the
# online store), loop decisions, the message outbox and a warehouse table. Two devices are shared by
# user-2 and user-3: SHARED_A was linked by user-2 first (its anonymous events are user-2's in
# silver), SHARED_B by user-3 first (its anonymous events are user-3's).

DAY = dt.date(2026, 4, 1)
H1, H2 = "2026-04-01-10:00", "2026-04-01-11:00"
SHARED_A, SHARED_B = "dev-shared-a", "dev-shared-b"
UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
      "Safari/605.1.15")
PERSONS = ("user-1", "user-10", "user-2", "user-3", "user-5")


def _t(minute: int, hour: int = 10) -> str:
    return f"2026-04-01T{hour:02d}:{minute:02d}:00Z"


def _ev(name: str, props: dict, *, user: str | None, anon: str | None, minute: int, **kw) -> dict:
    return event(name, props, user_id=user, anonymous_id=anon, ts=_t(minute), received=_t(minute), **kw)


def _seg(kind: str, *, user: str | None, anon: str | None, minute: int, message_id: str, **fields) -> dict:
    msg = {
        "messageId": message_id,
        "type": kind,
        "timestamp": _t(minute, 11),
        "sentAt": _t(minute, 11),
        "receivedAt": _t(minute, 11),
        "context": {"ip": "203.0.113.9", "userAgent": UA, "locale": "en-US",
                    "consent": {"categoryPreferences": {"analytics": True}}},
        **fields,
    }
    if user is not None:
        msg["userId"] = user
    if anon is not None:
        msg["anonymousId"] = anon
    return msg


def _malformed(event_id: str, user: str | None, anon: str) -> bytes:
    user_field = f'"user_id": "{user}", ' if user else ""
    return f'{{"event_id": "{event_id}", "event_name": "page_viewed", {user_field}"anonymous_id": "{anon}"'.encode()


def _batches(mentions: bool) -> dict[str, list[tuple[str, dict | bytes]]]:
    """Landing files (relative to landing/events) -> lines, each with the person it belongs to."""
    canonical: list[tuple[str, dict | bytes]] = []
    for i, (user, device, email) in enumerate(
        (("user-1", "d1", "one@example.com"), ("user-10", "d10", "ten@example.com"))
    ):
        m = 5 * i
        canonical += [
            (user, _ev("page_viewed", {"path": "/home"}, user=None, anon=device, minute=m + 1)),
            (user, _ev("user_signed_up", {"method": "email", "email": email}, user=user, anon=device, minute=m + 2)),
            (user, _ev("feature_used", {"feature": "api"}, user=user, anon=device, minute=m + 3)),
            (user, _ev("button_clicked", {}, user=user, anon=device, minute=m + 4)),  # quarantined: unplanned
            (user, _malformed(f"malformed-{user}", user, device)),  # quarantined: not JSON
        ]
    canonical += [
        ("user-10", _ev("page_viewed", {"path": "/no-consent"}, user="user-10", anon="d10", minute=9, analytics=False)),
        ("user-2", _ev("page_viewed", {"path": "/start"}, user=None, anon="d2", minute=10)),
        ("user-2", _ev("user_signed_up", {"method": "email", "email": "two@example.com"}, user="user-2", anon="d2",
                       minute=11)),
        ("user-3", _ev("user_signed_up", {"method": "email", "email": "three@example.com"}, user="user-3", anon="d3",
                       minute=11)),
        ("user-2", _ev("user_logged_in", {"method": "email"}, user="user-2", anon=SHARED_A, minute=12)),
        ("user-3", _ev("user_logged_in", {"method": "email"}, user="user-3", anon=SHARED_B, minute=13)),
        ("user-3", _ev("user_logged_in", {"method": "email"}, user="user-3", anon=SHARED_A, minute=14)),
        ("user-2", _ev("user_logged_in", {"method": "email"}, user="user-2", anon=SHARED_B, minute=15)),
        ("user-2", _ev("page_viewed", {"path": "/anon-a"}, user=None, anon=SHARED_A, minute=16)),
        ("user-3", _ev("page_viewed", {"path": "/anon-b"}, user=None, anon=SHARED_B, minute=17)),
        ("user-3", _ev("feature_used", {"feature": "reports"}, user="user-3", anon=SHARED_A, minute=18)),
        ("user-2", _ev("feature_used", {"feature": "alerts"}, user="user-2", anon=SHARED_B, minute=19)),
        ("user-3", _ev("button_clicked", {}, user="user-3", anon=SHARED_A, minute=20)),
        ("user-3", _ev("button_clicked", {}, user=None, anon=SHARED_B, minute=21)),
        ("user-2", _ev("button_clicked", {}, user=None, anon=SHARED_A, minute=21)),
        ("user-3", _malformed("malformed-3", "user-3", SHARED_A)),
        ("user-3", _malformed("malformed-b", None, SHARED_B)),
        # The never-seen id 1001 occurs inside ids and values of user-5's events, never as an id.
        ("user-5", _ev("page_viewed", {"path": "/items/1001"}, user="user-5", anon="d5", minute=22,
                       event_id="ev-1001")),
        ("user-5", _ev("page_viewed", {"path": "/p", "referrer": "https://x.example/?ref=1001"}, user="user-5",
                       anon="d5", minute=23, event_id="evt-user-1001-b")),
    ]
    if mentions:  # user-3's rows mention user-2's email; both use one phone number
        canonical += [
            ("user-3", _ev("page_viewed", {"path": "/invite", "referrer": "two@example.com"}, user="user-3",
                           anon="d3", minute=24)),
            ("user-3", _ev("user_signed_up", {"method": "two@example.com", "email": "three@example.com"},
                           user="user-3", anon="d3", minute=25)),  # quarantined: method not allowed
            ("user-2", _ev("user_identified", {"phone": "+1 555 0100"}, user="user-2", anon="d2", minute=26)),
            ("user-3", _ev("user_identified", {"phone": "+1 555 0100"}, user="user-3", anon="d3", minute=26)),
        ]
    gz = [
        ("user-10", _ev("page_viewed", {"path": "/gz"}, user="user-10", anon="d10", minute=30)),
        ("user-1", _ev("page_viewed", {"path": "/gz"}, user="user-1", anon="d1", minute=30)),
        ("user-3", _ev("page_viewed", {"path": "/gz"}, user="user-3", anon=SHARED_A, minute=31)),
        ("user-3", _ev("page_viewed", {"path": "/gz"}, user=None, anon=SHARED_B, minute=32)),
        ("user-2", _ev("page_viewed", {"path": "/gz"}, user=None, anon=SHARED_A, minute=33)),
    ]
    segment = [
        ("user-10", _seg("identify", user="user-10", anon="d10", minute=1, message_id="seg-10-identify",
                         traits={"email": "ten@example.com"})),
        ("user-1", _seg("track", user="user-1", anon="d1", minute=2, message_id="seg-1-login", event="Signed In",
                        properties={"method": "email"})),
        ("user-3", _seg("page", user="user-3", anon=SHARED_A, minute=3, message_id="seg-3-page",
                        properties={"path": "/seg"})),
        ("user-2", _seg("page", user=None, anon=SHARED_A, minute=4, message_id="seg-a-anon",
                        properties={"path": "/seg-anon"})),
        ("user-3", _seg("page", user=None, anon=SHARED_B, minute=5, message_id="seg-b-anon",
                        properties={"path": "/seg-anon"})),
        ("user-5", _seg("page", user="user-5", anon="d5", minute=6, message_id="msg-1001-seg",
                        properties={"path": "/items/1001"})),
        ("user-10", _seg("alias", user="user-10", anon=None, minute=7, message_id="seg-10-alias", previousId="d10")),
    ]
    return {
        "date=2026-04-01/hour=10/batch-1.jsonl": canonical,
        "date=2026-04-01/hour=10/batch-2.jsonl.gz": gz,
        "date=2026-04-01/hour=11/segment-1.jsonl": segment,
    }


def build_small_lake(paths, plan, masker, *, mentions: bool = False) -> dict[tuple[str, int], str]:
    """Land, ingest, build silver, features, loop decisions, the outbox and a warehouse table.

    Returns:
        (landing file, line number) -> the person the line belongs to.
    """
    from growth_loops.loops.runtime import DECISIONS
    from tests.integration.test_silver_build import passing_gate

    owners = {}
    for rel, lines in _batches(mentions).items():
        data = b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for _, x in lines) + b"\n"
        target = Path(paths.landing_events, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress(data) if rel.endswith(".gz") else data)
        owners |= {(rel, n): owner for n, (owner, _) in enumerate(lines, start=1)}
    for key in (H1, H2):
        assert ingest_partition(paths, key, plan=plan, masker=masker, auditor=passing_gate).ledger.reconciled
    build_silver(paths)
    store = FeatureStore(paths)
    try:
        store.materialize(DAY)
    finally:
        store.close()
    now = dt.datetime(2026, 4, 2, 6, tzinfo=dt.UTC)
    import pyarrow as pa

    delta_io.append(
        outbox_path(paths),
        pa.Table.from_pylist(
            [
                {"message_id": f"msg-{p}", "loop": "trial_nudge", "decision_id": f"dec-{p}", "decision_day": DAY,
                 "person_id": p, "template": "trial_nudge", "channel": "email", "payload": json.dumps({"to": p}),
                 "created_at": now, "status": "pending", "sent_at": None}
                for p in PERSONS
            ],
            schema=MESSAGE_OUTBOX,
        ),
        partition_by=["decision_day"],
    )
    delta_io.append(
        f"{paths.root}/delta/loops/trial_nudge/decisions",
        pa.Table.from_pylist(
            [
                {"decision_id": f"dec-{p}", "day": DAY, "loop": "trial_nudge", "policy_version": "v1", "person_id": p,
                 "action": "nudge", "propensity": 0.5, "actuated": True, "mode": "full", "decided_at": now}
                for p in PERSONS
            ],
            schema=DECISIONS,
        ),
        partition_by=["day"],
    )
    silver_events = DeltaTable(paths.silver_events).to_pyarrow_table()  # noqa: F841 - read by DuckDB below
    con = duckdb.connect(paths.warehouse)
    try:
        con.execute("CREATE SCHEMA silver")
        con.execute("CREATE TABLE silver.events AS SELECT * FROM silver_events")
    finally:
        con.close()
    return owners


def _landing_lines(paths) -> dict[tuple[str, int], bytes]:
    out = {}
    for path in sorted(Path(paths.landing_events).rglob("*.jsonl*")):
        rel = path.relative_to(paths.landing_events).as_posix()
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        out |= {(rel, n): line for n, line in enumerate(data.split(b"\n")[:-1], start=1)}
    return out


def _rows_by_owner(paths, owners: dict[tuple[str, int], str]) -> dict[str, dict[str, list[str]]]:
    """Per table the erasure touches: owner -> its rows (JSON, sorted), from the rows' own lineage."""
    bronze = read_delta(paths, "bronze/events")
    by_event = {
        e: owners[(f, n)] for e, f, n in bronze.select("event_id", "_source_file", "_line_number").iter_rows()
    }
    out: dict[str, dict[str, list[str]]] = {}
    for t in discover_tables(paths):
        frame = read_delta(paths, t)
        if "_source_file" in frame.columns:
            who = [owners[(f, n)] for f, n in frame.select("_source_file", "_line_number").iter_rows()]
        elif "source_file" in frame.columns:
            who = [owners[(f, n)] for f, n in frame.select("source_file", "line_number").iter_rows()]
        elif t == "silver/events":
            who = [by_event[e] for e in frame["event_id"]]
        elif "person_id" in frame.columns:
            who = frame["person_id"].to_list()
        elif t == "silver/identity_map":
            who = frame["user_id"].to_list()
        else:
            continue  # bookkeeping: the ledger, build and rollup state, materialization log
        table: dict[str, list[str]] = {}
        for owner, row in zip(who, frame.to_dicts(), strict=True):
            table.setdefault(owner, []).append(_texts(row))
        out[t] = {owner: sorted(rows) for owner, rows in table.items()}
    con = duckdb.connect(paths.warehouse, read_only=True)
    try:
        cur = con.execute("SELECT * FROM silver.events")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    out["warehouse/silver.events"] = {}
    for row in rows:
        out["warehouse/silver.events"].setdefault(by_event[row["event_id"]], []).append(_texts(row))
    con = sqlite3.connect(f"file:{paths.online_store}?mode=ro", uri=True)
    try:
        for (t,) in con.execute("select name from sqlite_master where type = 'table'").fetchall():
            cur = con.execute(f'select * from "{t}"')
            names = [d[0] for d in cur.description]
            for row in cur.fetchall():
                rec = dict(zip(names, row, strict=True))
                out.setdefault(f"online/{t}", {}).setdefault(rec["person_id"], []).append(_texts(rec))
    finally:
        con.close()
    return {t: {o: sorted(r) for o, r in table.items()} for t, table in out.items()}


def _assert_only_subject_changed(before_lines, after_lines, before_rows, after_rows, subject: str | None) -> None:
    assert after_lines.keys() == before_lines.keys()  # blanked, never removed: line numbers stay
    for where, line in before_lines.items():
        if subject is not None and OWNERS[where] == subject:
            assert after_lines[where] == b"", f"{where}: a line of {subject} was kept"
        else:
            assert after_lines[where] == line, f"{where}: a line of {OWNERS[where]} changed"
    for t, table in before_rows.items():
        for owner, rows in table.items():
            if owner == subject:
                assert owner not in after_rows.get(t, {}), f"{t}: rows of {subject} were kept"
            elif t == "silver/identity_map":
                assert set(rows) <= set(after_rows[t][owner]), f"{t}: an identity row of {owner} changed"
            else:
                assert after_rows[t].get(owner) == rows, f"{t}: rows of {owner} changed"


OWNERS: dict[tuple[str, int], str] = {}


def _snapshot(paths):
    return _landing_lines(paths), _rows_by_owner(paths, OWNERS)


def test_erasing_user_1_leaves_user_10_untouched(paths, plan, masker):
    OWNERS.clear()
    OWNERS.update(build_small_lake(paths, plan, masker))
    lines, rows = _snapshot(paths)
    assert {"user-1", "user-10"} <= set(rows["bronze/quarantine"]) and "user-10" in rows["online/fv_user_features"]

    report = erase_person(paths, "user-1", reason="ticket", masker=masker)

    after_lines, after_rows = _snapshot(paths)
    _assert_only_subject_changed(lines, after_lines, rows, after_rows, "user-1")
    assert report.landing_lines_removed == sum(1 for o in OWNERS.values() if o == "user-1")
    assert byte_scan(paths.root, ['"user-1"', '"d1"', "anon:d1"]) == []


def test_an_id_the_lake_never_saw_erases_nothing_and_says_so(paths, plan, masker, capsys):
    from orchestration.cli import main

    OWNERS.clear()
    OWNERS.update(build_small_lake(paths, plan, masker))
    lines, rows = _snapshot(paths)
    versions = _versions(paths)

    assert main(["erase", "--root", paths.root, "--user", "1001", "--yes"]) == 0

    after_lines, after_rows = _snapshot(paths)
    _assert_only_subject_changed(lines, after_lines, rows, after_rows, None)
    assert {t: v for t, v in _versions(paths).items() if t != "governance/erasures"} == versions  # no commit
    assert "nothing found" in capsys.readouterr().out
    (record,) = read_delta(paths, "governance/erasures").to_dicts()
    detail = json.loads(record["detail"])
    assert record["rows_removed"] == record["landing_lines_removed"] == 0 and detail["subject_known"] is False


def test_a_shared_device_keeps_the_other_users_events(paths, plan, masker):
    from tests.integration.test_silver_build import assert_exactly_once_and_equal_to_rebuild

    OWNERS.clear()
    OWNERS.update(build_small_lake(paths, plan, masker))
    lines, rows = _snapshot(paths)
    identity = read_delta(paths, "silver/identity_map")
    assert dict(identity.select("anonymous_id", "user_id").iter_rows()) == {
        "d1": "user-1", "d10": "user-10", "d2": "user-2", "d3": "user-3", "d5": "user-5",
        SHARED_A: "user-2", SHARED_B: "user-3",
    }

    report = erase_person(paths, "user-2", reason="ticket", masker=masker)

    after_lines, after_rows = _snapshot(paths)
    _assert_only_subject_changed(lines, after_lines, rows, after_rows, "user-2")
    # The anonymous events of the device user-2 linked first went with them; user-3's events on it
    # stayed, and the device is now linked to user-3, as a rebuild of silver from bronze says.
    silver = read_delta(paths, "silver/events")
    assert silver.filter(pl.col("anonymous_id") == SHARED_A)["person_id"].unique().to_list() == ["user-3"]
    assert silver.filter(pl.col("anonymous_id") == SHARED_B)["person_id"].unique().to_list() == ["user-3"]
    assert silver.filter(pl.col("anonymous_id") == SHARED_B)["user_id"].null_count() == 3  # anonymous, kept
    after_identity = read_delta(paths, "silver/identity_map")
    successor = after_identity.filter(pl.col("anonymous_id") == SHARED_A).to_dicts()
    assert [(r["user_id"], r["link_event_name"], r["linked_at"].strftime("%H:%M")) for r in successor] == [
        ("user-3", "user_logged_in", "10:14")
    ]
    assert after_identity.height == identity.height - 1  # d2 gone; SHARED_A relinked in place
    assert (report.devices, report.shared_devices) == (3, 2)
    assert byte_scan(paths.root, ['"user-2"', '"d2"', "anon:d2"]) == []
    assert_exactly_once_and_equal_to_rebuild(paths)


def test_email_and_phone_are_removed_wherever_they_appear_unless_another_person_has_them_too(paths, plan, masker):
    OWNERS.clear()
    OWNERS.update(build_small_lake(paths, plan, masker, mentions=True))
    email, phone = masker.hash("two@example.com"), masker.hash("+1 555 0100")
    quarantine = read_delta(paths, "bronze/quarantine")
    mention = quarantine.filter(pl.col("raw_line").str.contains(email))
    # user-3's quarantined line names the email in its detail, masked (no raw PII past landing)
    assert mention.height == 1 and email in mention["detail"][0] and "two@example.com" not in mention["detail"][0]
    assert read_delta(paths, "silver/events").filter(pl.col("properties").str.contains(email)).height == 2
    lines = _landing_lines(paths)

    erase_person(paths, "user-2", reason="ticket", masker=masker)

    for t in discover_tables(paths):
        text = _texts(read_delta(paths, t).to_dicts())
        assert email not in text and "two@example.com" not in text, t
    # Everywhere below the root — but another person's landed lines, which stay as they landed.
    left = byte_scan(paths.root, [email, "two@example.com"])
    assert left == ["landing/events/date=2026-04-01/hour=10/batch-1.jsonl"]
    after = _landing_lines(paths)
    for where, line in lines.items():
        assert after[where] == (b"" if OWNERS[where] == "user-2" else line), where
    invite = read_delta(paths, "silver/events").filter(pl.col("properties").str.contains("/invite"))
    assert json.loads(invite["properties"][0]) == {"path": "/invite", "referrer": "erased"}
    after = read_delta(paths, "bronze/quarantine").filter(pl.col("line_number") == mention["line_number"][0])
    assert "method='hmac:erased'" in after["detail"][0] and after["event_id"][0] == mention["event_id"][0]
    # The phone number user-3 gave too is theirs as well: it stays in their row.
    kept = read_delta(paths, "bronze/events").filter(pl.col("properties").str.contains(phone))
    assert kept["user_id"].to_list() == ["user-3"]

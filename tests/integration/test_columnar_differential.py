"""Differential test (issue 18): the column-wise normalizer against the per-line reference.

``normalize_files`` (column-wise, :mod:`lake.ingest.columnar`) and the per-line reference — the
:class:`lake.ingest.normalize.Normalizer` loop that ``normalize_files`` ran before, kept as it was —
read the same landed files. They must produce the same bronze rows (every column, in order), the same
quarantine rows (violation, detail, masked line, masked fields, file and line number), the same
erasure requests and the same ledger counts. The inputs: the simulator's full fault mix over several
seeds, the Segment / RudderStack fixtures of ``test_segment_landing``, and generated and mutated lines
(hypothesis: those of ``test_ingest_property``, and valid events with hostile values in every field
the columns judge).
"""

from __future__ import annotations

import gzip
import secrets
import shutil
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lake.contracts import load_plan
from lake.ingest import columnar, parallel
from lake.ingest.formats import converters_for
from lake.ingest.normalize import NormalizedBatch, Normalizer
from lake.landing import iter_lines, list_landing_files, list_landing_partitions, partition_folder
from lake.paths import LakePaths
from lake.pii import PiiMasker
from lake.settings import Settings
from simulation import simulate
from tests.helpers import UA_IPHONE
from tests.integration.test_ingest_property import (
    CANONICAL_FIELDS,
    SEGMENT_FIELDS,
    TRICKY,
    canonical_bases,
    line_strategy,
    segment_bases,
)
from tests.integration.test_segment_landing import rudder_dump, segment_dump

pytestmark = pytest.mark.slow

KEY = "2026-11-02-05:00"
PLAN = load_plan()
PII_KEY = secrets.token_hex(32)
MASKER = PiiMasker(PII_KEY.encode())


@pytest.fixture(autouse=True)
def _columns_for_any_size(monkeypatch):
    """The columns run however small the test's partitions (production leaves small ones per line)."""
    monkeypatch.setattr(parallel, "COLUMNAR_MIN_BYTES", 0)


def reference(paths: LakePaths, key: str, ingested_at: datetime | None = None) -> NormalizedBatch:
    """The per-line path, as ``normalize_files`` ran it before the columns (serially)."""
    files = list_landing_files(paths, key)
    limit = paths.settings.max_line_bytes
    norm = Normalizer(PLAN, MASKER, max_line_bytes=limit, ingested_at=ingested_at)
    for f, convert in zip(files, converters_for(paths, files, plan=PLAN), strict=True):
        for number, raw in iter_lines(paths, f, max_line_bytes=limit):
            norm.add_line(raw, f.relative, number, key, convert)
    return norm.finish()


def _without(table: pa.Table, column: str) -> pa.Table:
    assert len(set(table[column].to_pylist())) <= 1  # one stamp per run: the only column allowed to differ
    return table.drop_columns([column])


def differences(old: NormalizedBatch, new: NormalizedBatch) -> list[str]:
    """Everything that differs between two batches (empty: identical outcomes)."""
    out = []
    for name in ("lines_landed", "consent_dropped", "quarantined_by_reason", "revocations", "by_partition"):
        if getattr(old, name) != getattr(new, name):
            out.append(f"{name}: {getattr(old, name)!r} != {getattr(new, name)!r}")
    for name, stamp in (("bronze", "_ingested_at"), ("quarantine", "ingested_at")):
        a, b = _without(getattr(old, name), stamp), _without(getattr(new, name), stamp)
        if a.schema != b.schema:
            out.append(f"{name} schema: {a.schema} != {b.schema}")
        elif a.num_rows != b.num_rows:
            out.append(f"{name}: {a.num_rows} rows != {b.num_rows}")
        else:
            for col in a.column_names:
                x, y = a[col].to_pylist(), b[col].to_pylist()
                bad = [i for i in range(len(x)) if x[i] != y[i]]
                if bad:
                    out.append(f"{name}.{col} row {bad[0]} ({len(bad)} rows): {x[bad[0]]!r} != {y[bad[0]]!r}")
    return out


def assert_same(paths: LakePaths, key: str) -> NormalizedBatch:
    new = parallel.normalize_files(paths, key, list_landing_files(paths, key), plan=PLAN, masker=MASKER)
    problems = differences(reference(paths, key), new)
    assert not problems, "\n".join(problems)
    return new


def _lake(root: Path, **env: str) -> LakePaths:
    s = Settings.from_env({"GROWTHLAKE_PII_KEY": PII_KEY, **env}, root=root / "lake")
    return LakePaths.from_root(root / "lake", settings=s)


# -- the simulator's fault mix ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_simulated_hours_with_every_fault_match_the_reference(tmp_path, seed):
    paths = _lake(tmp_path)
    # a high fault rate puts every kind of fault (and redeliveries) into a small simulation
    simulate(paths.root, users=120, days=2, seed=seed, start=date(2026, 11, 2), fault_rate=0.25,
             analytics_consent_rate=0.8)
    keys = list_landing_partitions(paths)
    assert len(keys) > 24
    totals = {"bronze": 0, "quarantine": 0, "fallback": 0, "lines": 0}
    for key in keys:
        batch = assert_same(paths, key)
        totals["bronze"] += batch.bronze.num_rows
        totals["quarantine"] += batch.quarantine.num_rows
        totals["fallback"] += batch.python_fallback_lines
        totals["lines"] += batch.lines_landed
    assert totals["bronze"] and totals["quarantine"]
    # every quarantined line is the reference's; most lines are judged column-wise
    assert totals["quarantine"] <= totals["fallback"] < totals["lines"] / 2


def test_a_range_of_hours_in_one_pass_matches_the_reference_hour_by_hour(tmp_path):
    """A ranged ingestion normalizes many hours in one batch: its rows are the hours' reference rows
    in hour order, and each hour's line and consent counts are that hour's own (the ledger is per hour)."""
    paths = _lake(tmp_path)
    simulate(paths.root, users=120, days=2, seed=4, start=date(2026, 11, 2), fault_rate=0.25,
             analytics_consent_rate=0.8)
    keys = list_landing_partitions(paths)
    files = {key: list_landing_files(paths, key) for key in keys}
    batch = parallel.normalize_hours(paths, files, plan=PLAN, masker=MASKER)
    now = datetime.now(UTC)
    refs = [reference(paths, key, now) for key in keys]
    expected = NormalizedBatch(
        lines_landed=sum(r.lines_landed for r in refs), consent_dropped=sum(r.consent_dropped for r in refs),
        bronze=pa.concat_tables([r.bronze for r in refs]), quarantine=pa.concat_tables([r.quarantine for r in refs]),
        revocations=[v for r in refs for v in r.revocations],
        by_partition={k: v for r in refs for k, v in r.by_partition.items()})
    problems = differences(expected, batch)
    assert not problems, "\n".join(problems)
    assert batch.python_fallback_lines < batch.lines_landed / 2  # the columns judged most of the range
    assert sum(1 for r in refs if r.consent_dropped) > 1  # several hours have consent drops to tell apart
    for key, ref in zip(keys, refs, strict=True):
        assert batch.by_partition.get(key, (0, 0)) == (ref.lines_landed, ref.consent_dropped), key


def test_a_large_hour_normalized_by_the_worker_pool_matches_the_reference(tmp_path, monkeypatch):
    paths = _lake(tmp_path)
    simulate(paths.root, users=400, days=1, seed=7, start=date(2026, 11, 2), fault_rate=0.2)
    last = list_landing_partitions(paths)[-1]  # the day's lines all in its last hour: its window takes them
    folder = Path(paths.landing_events) / partition_folder(last)
    for i, f in enumerate(sorted(Path(paths.landing_events).rglob("sim-*.jsonl"))):
        if f.parent != folder:
            (folder / f"{i:03d}-{f.name}").write_bytes(f.read_bytes())
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    assert parallel.runs_in_parallel(list_landing_files(paths, last)) or parallel._workers() < 2
    try:
        batch = assert_same(paths, last)
    finally:
        parallel.shutdown_pool()
    assert batch.bronze.num_rows > 1000


def test_small_partitions_and_the_per_line_setting_are_normalized_per_line(tmp_path, monkeypatch):
    paths = _lake(tmp_path)
    simulate(paths.root, users=20, days=1, seed=4, start=date(2026, 11, 2))
    key = max(list_landing_partitions(paths), key=lambda k: sum(f.size for f in list_landing_files(paths, k)))
    batch = assert_same(paths, key)
    assert 0 < batch.python_fallback_lines < batch.lines_landed  # the columns (the fixture allows any size)
    monkeypatch.setattr(parallel, "COLUMNAR_MIN_BYTES", 8 << 20)  # production's threshold: too small
    small = parallel.normalize_files(paths, key, list_landing_files(paths, key), plan=PLAN, masker=MASKER)
    assert small.python_fallback_lines == small.lines_landed == batch.lines_landed
    monkeypatch.setattr(parallel, "COLUMNAR_MIN_BYTES", 0)
    per_line = _lake(tmp_path, GROWTHLAKE_NORMALIZER="per_line")
    forced = parallel.normalize_files(per_line, key, list_landing_files(per_line, key), plan=PLAN, masker=MASKER)
    assert not differences(batch, forced) and forced.python_fallback_lines == batch.lines_landed


# -- Segment / RudderStack fixtures -----------------------------------------------------------------------


def _write_gz(paths: LakePaths, name: str, lines: list[dict | bytes]) -> None:
    folder = Path(paths.landing_events) / partition_folder(KEY)
    folder.mkdir(parents=True, exist_ok=True)
    raw = b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines) + b"\n"
    (folder / name).write_bytes(gzip.compress(raw))


def test_segment_and_rudderstack_fixtures_match_the_reference(tmp_path):
    paths = _lake(tmp_path)
    _write_gz(paths, "1762060200000.b8f2c4e1.gz", segment_dump())
    _write_gz(paths, "1762060201000.src1.4d9a.json.gz", rudder_dump())
    batch = assert_same(paths, KEY)
    # 20 lines: the columns take the 11 bronze candidates (a redelivery included) and 3 of the 4 dropped
    # for consent; the per-line path the 4 quarantined, the consent update (dropped too) and the blank line
    assert (batch.lines_landed, batch.bronze.num_rows, batch.consent_dropped) == (19, 11, 4)
    assert batch.python_fallback_lines == 6


# -- generated and mutated lines ----------------------------------------------------------------------------

MAX_LINE = 2048
HOSTILE = st.sampled_from(TRICKY) | st.text(max_size=24) | st.sampled_from(
    ["ada@example.org", "x ada%40example.org", "198.51.100.23", "+14155550123", "0123 456 7890", "a\"b", "\\", "é",
     "2026-11-02T05:10:00.000Z", "\u2028", "12345678-1234-1234-1234-123456789abc"])
TIMES = st.sampled_from(["2026-11-02T05:09:58.120Z", "2026-11-02T05:09:58Z", "2026-11-02T05:09:58.120000Z",
                         "2026-11-02T06:09:58.120+01:00", "2026-11-02T00:09:58-05:00", "2026-11-02 05:09:58Z",
                         "2026-11-02T05:09:58.1Z", "2026-10-02T05:09:58Z", "2026-11-02T07:20:00Z",
                         "2026-02-29T05:09:58Z", "2026-11-31T05:09:58Z", "2026-11-02T24:00:00Z",
                         "2026-11-02T05:09:58+24:00", "2026-11-02T05:60:00Z", "2026-11-02t05:09:58z"])
COHERENT = st.sampled_from([("2026-11-02T05:09:58.120Z", "2026-11-02T05:10:01.000Z"),
                            ("2026-11-02T06:09:58.120000+01:00", "2026-11-02T05:10:01Z")])


@st.composite
def valid_ish(draw: Any) -> bytes:
    """A planned event whose every field the columns judge may hold a hostile value."""
    name = draw(st.sampled_from(["page_viewed", "user_signed_up", "feature_used", "trial_started",
                                 "user_identified", "onboarding_step_completed", "subscription_started"]))
    spec = PLAN.events[name]
    props: dict[str, Any] = {}
    for p in spec.properties.values():
        if not p.required and draw(st.booleans()):
            continue
        if p.enum is not None and draw(st.integers(0, 4)):
            props[p.name] = draw(st.sampled_from(list(p.enum)))
        elif p.type == "string":
            props[p.name] = draw(HOSTILE)
        elif p.type == "integer":
            props[p.name] = draw(st.integers(-3, 70) | st.sampled_from([2**53 + 1, 2**63]))
        elif p.type == "number":
            props[p.name] = draw(st.floats(-5, 1e6, allow_nan=False) | st.integers(-5, 10**6))
        else:
            props[p.name] = draw(st.booleans())
        if draw(st.integers(0, 12)) == 0:
            props[p.name] = draw(st.none() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=3))
    if draw(st.integers(0, 9)) == 0:
        props[draw(st.text(max_size=5))] = draw(HOSTILE)
    ts, rec = draw(COHERENT | st.tuples(TIMES, TIMES))
    ev = {"event_id": draw(st.uuids().map(str) | HOSTILE), "event_name": name, "timestamp": ts,
          "received_at": rec, "user_id": draw(st.none() | HOSTILE), "anonymous_id": draw(st.none() | HOSTILE),
          "session_id": draw(st.none() | HOSTILE), "properties": props,
          "context": {"ip": draw(st.none() | HOSTILE), "user_agent": draw(st.none() | st.just(UA_IPHONE) | HOSTILE),
                      "locale": draw(st.none() | HOSTILE),
                      "consent": {"analytics": draw(st.sampled_from([True, True, True, False, None])),
                                  "marketing": draw(st.sampled_from([True, False, None]))}}}
    return orjson.dumps(ev)


SEGMENT_TIMES = TIMES | st.sampled_from(["2026-11-02T05:09:58.123456Z", "2026-11-02T05:09:58.999999+00:30"])


@st.composite
def valid_ish_segment(draw: Any) -> bytes:
    """A Segment / RudderStack message of any type whose copied fields may hold hostile values."""
    mtype = draw(st.sampled_from(["track", "page", "screen", "identify", "group", "alias", "track", "page"]))
    msg: dict[str, Any] = {"type": mtype, "messageId": draw(st.uuids().map(str) | HOSTILE | st.integers(0, 9))}
    coherent = draw(st.booleans())
    times = {"receivedAt": "2026-11-02T05:10:01.000Z", "timestamp": "2026-11-02T05:09:59.000Z",
             "originalTimestamp": "2026-11-02T05:09:58.120Z", "sentAt": "2026-11-02T05:10:00.456789Z"}
    for field in ("receivedAt", "timestamp", "originalTimestamp", "sentAt"):
        if field == "receivedAt" or draw(st.integers(0, 3)):
            msg[field] = times[field] if coherent else draw(SEGMENT_TIMES)
    for field in ("userId", "anonymousId", "previousId", "groupId", "name", "category"):
        if draw(st.booleans()):
            msg[field] = draw(st.none() | HOSTILE | st.just(""))
    if mtype == "track":
        msg["event"] = draw(st.sampled_from(["Signed In", "Signed Up", "Feature Used", "featureUsed", "Trial Started",
                                             "Order Completed", "page_viewed"]) | HOSTILE)
    props = {k: draw(HOSTILE) for k in draw(st.lists(st.sampled_from(
        ["method", "feature", "path", "url", "title", "email", "plan", "trial_days", "x"]), max_size=3))}
    if "feature" in props and draw(st.booleans()):
        props["feature"] = "api"
    if "method" in props and draw(st.booleans()):
        props["method"] = "email"
    if draw(st.integers(0, 5)):
        msg["properties" if mtype != "identify" else "traits"] = props
    ctx: dict[str, Any] = {"ip": draw(st.none() | HOSTILE), "userAgent": draw(st.just(UA_IPHONE) | HOSTILE),
                           "locale": draw(st.none() | HOSTILE), "sessionId": draw(st.none() | HOSTILE)}
    ctx["consent"] = draw(st.sampled_from([
        {"categoryPreferences": {"Analytics": True, "Advertising": False}}, {"categoryPreferences": {"C0002": True}},
        {"analytics": True, "marketing": True}, {"categoryPreferences": {"Analytics": False}}, None]))
    if draw(st.integers(0, 4)) == 0:
        ctx["consentManagement"] = {"allowedConsentIds": ["analytics"], "deniedConsentIds": []}
    if draw(st.booleans()):
        ctx["campaign"] = {"source": draw(HOSTILE), "name": "fall"}
    msg["context"] = ctx
    return orjson.dumps(msg)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(canonical=st.lists(line_strategy(canonical_bases(), CANONICAL_FIELDS) | valid_ish(), max_size=25),
       segment=st.lists(line_strategy(segment_bases(), SEGMENT_FIELDS) | valid_ish_segment(), max_size=20))
def test_generated_and_mutated_lines_match_the_reference(canonical, segment):
    root = Path(tempfile.mkdtemp(prefix="growthlake-differential-"))
    try:
        paths = _lake(root, GROWTHLAKE_MAX_LINE_BYTES=str(MAX_LINE))
        folder = Path(paths.landing_events) / partition_folder(KEY)
        folder.mkdir(parents=True)
        for name, lines in (("batch-1.jsonl", canonical), ("1762060200000.segment.jsonl", segment)):
            if lines:
                (folder / name).write_bytes(b"\n".join(lines) + b"\n")
        assert_same(paths, KEY)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -- the test can fail ----------------------------------------------------------------------------------------


def test_the_comparison_catches_a_columnar_defect(tmp_path, monkeypatch):
    """A defect planted in the columns (identifiers never judged as PII) is caught."""
    paths = _lake(tmp_path)
    folder = Path(paths.landing_events) / partition_folder(KEY)
    folder.mkdir(parents=True)
    line = {"event_id": "e-1", "event_name": "page_viewed", "timestamp": "2026-11-02T05:09:58.120Z",
            "received_at": "2026-11-02T05:10:01.000Z", "user_id": "ada@example.org", "properties": {"path": "/"},
            "context": {"consent": {"analytics": True}}}
    (folder / "batch-1.jsonl").write_bytes(orjson.dumps(line) + b"\n")
    assert_same(paths, KEY)
    monkeypatch.setattr(columnar, "maybe_pii", lambda values: values.str.len_chars() < 0)
    with pytest.raises(AssertionError, match=r"bronze\.user_id row 0"):
        assert_same(paths, KEY)

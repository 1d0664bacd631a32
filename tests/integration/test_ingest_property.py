"""Property (issue 17): ingestion is total.

Hypothesis lands generated lines — canonical events and Segment messages with random JSON values in
their fields, valid lines mutated, bytes that are not JSON, nesting up to orjson's 1024 levels, lines
over ``GROWTHLAKE_MAX_LINE_BYTES`` — in a fresh lake and ingests the hour for real (Delta tables,
ledger, lock). Whatever the lines: ingestion returns, the ledger reconciles
(landed = bronze + quarantined + consent-dropped + duplicates) and so does the independent recount,
and a rerun of the hour changes nothing.

The auditor applies every row-level expectation of the two bronze suites (PII patterns, value sets,
the event-time window, not-null, unique) with pyarrow instead of Great Expectations (far slower); the
statistical one (identity_key ``mostly: 0.99``) judges a batch, not a line, and is left out.
"""

from __future__ import annotations

import copy
import json
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from hypothesis import event as note
from hypothesis import given, settings
from hypothesis import strategies as st

import expectations
from lake.contracts import load_plan
from lake.ingest import ingest_partition
from lake.ledger import verify_partition
from lake.paths import LakePaths
from lake.pii import PiiMasker
from lake.settings import Settings
from tests.helpers import UA_IPHONE, event

pytestmark = pytest.mark.slow

KEY = "2026-11-02-05:00"
MAX_LINE = 2048  # GROWTHLAKE_MAX_LINE_BYTES of the generated lakes (its minimum is 1024)
PII_KEY = secrets.token_hex(32)
PLAN = load_plan()
MASKER = PiiMasker(PII_KEY.encode())
SUITES = Path(expectations.__file__).parent / "suites"
DROP = object()  # a mutation that removes the field

# -- what goes into a line -------------------------------------------------------------------------
TRICKY = [
    "", " ", "2026-11-02T05:10:00Z", "2026-11-02T05:10:01.000Z", "2026-11-02T05:09:58.120Z", "0001-01-01T00+01",
    "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
    "2026-11-02", "2026-10-01T05:10:00Z", "ada.lovelace@example.org", "ada%40example.org", "my ip is 198.51.100.23.",
    "2001:db8::1", "+14155550123", "(415) 555-0123", "020 7946 0958", "page_viewed", "user_signed_up",
    "consent_updated", "track", "page", "screen", "identify", "alias", "group", "Signed In", "Signed Up",
    "Segment Consent Preference Updated", "analytics", "Analytics", "marketing", "email", "e-1", "e-2", "u1", "a1",
    UA_IPHONE, "curl/8.0", "x" * 300, "\u0000", "\\u0040", "a\n@b.co", "\u00e9198.51.100.23", "\U0001d11e", "/pricing",
]
FIELD_NAMES = ["analytics", "marketing", "categoryPreferences", "Analytics", "allowedConsentIds", "deniedConsentIds",
               "consent", "ip", "userAgent", "user_agent", "locale", "path", "url", "email", "method", "source"]
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30) | st.sampled_from(TRICKY))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6) | st.sampled_from(FIELD_NAMES),
                                                                inner, max_size=3),
    max_leaves=8,
)

CANONICAL_FIELDS = [("event_id",), ("event_name",), ("timestamp",), ("received_at",), ("user_id",), ("anonymous_id",),
                    ("session_id",), ("properties",), ("properties", "path"), ("properties", "email"),
                    ("properties", "method"), ("properties", "analytics"), ("properties", "x"), ("context",),
                    ("context", "ip"), ("context", "user_agent"), ("context", "locale"), ("context", "consent"),
                    ("context", "consent", "analytics"), ("context", "consent", "marketing"), ("extra",)]
SEGMENT_FIELDS = [("type",), ("messageId",), ("event",), ("userId",), ("anonymousId",), ("previousId",), ("groupId",),
                  ("name",), ("properties",), ("properties", "url"), ("properties", "path"), ("traits",),
                  ("traits", "email"), ("timestamp",), ("originalTimestamp",), ("sentAt",), ("receivedAt",),
                  ("context",), ("context", "ip"), ("context", "userAgent"), ("context", "locale"),
                  ("context", "sessionId"), ("context", "campaign"), ("context", "traits"), ("context", "consent"),
                  ("context", "consent", "categoryPreferences"),
                  ("context", "consent", "categoryPreferences", "Analytics"),
                  ("context", "consentManagement"), ("context", "consentManagement", "allowedConsentIds")]


def canonical_bases() -> list[dict]:
    return [event(event_id="e-1"), event("user_signed_up", {"method": "email", "email": "ada@example.org"},
                                         event_id="e-2", user_id="u1"),
            event(event_id="e-3", analytics=False), event("consent_updated", {"analytics": False}, user_id="u1")]


def segment_bases() -> list[dict]:
    times = {"originalTimestamp": "2026-11-02T05:09:58.120Z", "timestamp": "2026-11-02T05:09:59.000Z",
             "sentAt": "2026-11-02T05:10:00.000Z", "receivedAt": "2026-11-02T05:10:01.000Z"}
    ctx = {"ip": "198.51.100.20", "userAgent": UA_IPHONE, "locale": "en-GB", "sessionId": "s-1",
           "consent": {"categoryPreferences": {"Analytics": True, "Advertising": False}}}
    messages = [
        {"type": "track", "messageId": "m-1", "event": "Signed In", "userId": "u1", "properties": {"method": "email"}},
        {"type": "page", "messageId": "m-2", "anonymousId": "a1", "name": "Pricing",
         "properties": {"url": "https://app.example.com/pricing?e=ada%40example.org"}},
        {"type": "identify", "messageId": "m-3", "userId": "u1", "anonymousId": "a2",
         "traits": {"email": "a@b.example"}},
        {"type": "alias", "messageId": "m-4", "userId": "u3", "previousId": "a4"},
        {"type": "track", "messageId": "m-5", "event": "Segment Consent Preference Updated", "userId": "u1",
         "context": {"consent": {"categoryPreferences": {"Analytics": False}}}},
        {"type": "page", "messageId": "m-6", "anonymousId": "a5", "properties": {"path": "/"},
         "context": {"consent": None, "consentManagement": {"allowedConsentIds": ["analytics"]}}},
    ]
    return [times | m | {"context": ctx | m.get("context", {})} for m in messages]


def _mutate(base: dict, mutations: list[tuple[tuple[str, ...], Any]]) -> dict:
    out = copy.deepcopy(base)
    for path, value in mutations:
        node = out
        for key in path[:-1]:
            if type(node.get(key)) is not dict:
                node[key] = {}
            node = node[key]
        if value is DROP:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return out


def mutated(bases: list[dict], fields: list[tuple[str, ...]]) -> st.SearchStrategy[bytes]:
    mutation = st.tuples(st.sampled_from(fields), json_values | st.just(DROP))
    return st.builds(lambda base, ms: orjson.dumps(_mutate(base, ms)),
                     st.sampled_from(bases), st.lists(mutation, max_size=3))


def _nested(depth: int) -> bytes:
    return b"[" * depth + b'"ada@example.org"' + b"]" * depth


def deeply_nested(bases: list[dict], fields: list[tuple[str, ...]]) -> st.SearchStrategy[bytes]:
    """A valid line with one field nested ``depth`` levels deep (orjson writes 254, reads 1024)."""
    marker = "\x00deep\x00"

    def build(base: dict, path: tuple[str, ...], depth: int) -> bytes:
        return orjson.dumps(_mutate(base, [(path, marker)])).replace(orjson.dumps(marker), _nested(depth))

    return st.builds(build, st.sampled_from(bases), st.sampled_from(fields),
                     st.sampled_from([60, 255, 300, 1000, 1023]))


def too_long(bases: list[dict]) -> st.SearchStrategy[bytes]:
    def build(base: dict, filler: str, size: int) -> bytes:
        return orjson.dumps(_mutate(base, [(("properties", "blob"), (filler * size)[:size])]))

    return st.builds(build, st.sampled_from(bases), st.sampled_from(["a", "a@", "1.", "9 ", "%40"]),
                     st.integers(min_value=MAX_LINE - 200, max_value=3 * MAX_LINE))


def line_strategy(bases: list[dict], fields: list[tuple[str, ...]]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from(bases).map(orjson.dumps),  # as it came (redeliveries of the same id included)
        mutated(bases, fields),
        json_values.map(orjson.dumps),  # any JSON value as a whole line
        st.binary(max_size=120),  # not JSON (nor, maybe, UTF-8)
        deeply_nested(bases, fields),
        too_long(bases),
        st.just(b"   "),  # blank: not a line
    ).map(lambda line: line.replace(b"\n", b"\\n"))


# -- the row-level gates -----------------------------------------------------------------------------


@dataclass
class _Outcome:
    success: bool
    problems: list[str]

    def summary(self) -> str:
        return "; ".join(self.problems) or "passed"

    def to_metadata(self) -> dict:
        return {}


def row_level_gates(suite: str, batch: pa.Table, parameters: dict[str, Any]) -> _Outcome:
    problems = []
    for e in json.loads((SUITES / f"{suite}.json").read_text()):
        kw, kind = e["kwargs"], e["type"]
        column = batch[kw["column"]] if kw.get("column") in batch.column_names else None
        if column is None or "mostly" in kw:
            continue
        values = column.drop_null()

        def param(value: Any) -> Any:
            return parameters[value["$PARAMETER"]] if isinstance(value, dict) else value

        if (kind == "expect_column_values_to_not_match_regex"
                and pc.any(pc.match_substring_regex(values, kw["regex"])).as_py()):
            problems.append(f"{kw['column']} matches {kw['regex']}")
        elif (kind == "expect_column_values_to_match_regex"
                and not pc.all(pc.match_substring_regex(values, kw["regex"])).as_py() and len(values)):
            problems.append(f"{kw['column']} does not match {kw['regex']}")
        elif kind == "expect_column_values_to_not_be_null" and column.null_count:
            problems.append(f"{kw['column']} has nulls")
        elif kind == "expect_column_values_to_be_unique" and pc.count_distinct(values).as_py() != len(values):
            problems.append(f"{kw['column']} is not unique")
        elif kind == "expect_column_values_to_be_in_set":
            allowed = pa.array(sorted(param(kw["value_set"])), values.type)
            if not pc.all(pc.is_in(values, value_set=allowed)).as_py() and len(values):
                problems.append(f"{kw['column']} outside its set")
        elif kind == "expect_column_values_to_be_between" and len(values):
            lo, hi = param(kw.get("min_value")), param(kw.get("max_value"))
            low, high = pc.min(values).as_py(), pc.max(values).as_py()
            if (lo is not None and low < lo) or (hi is not None and high > hi):
                problems.append(f"{kw['column']} outside [{lo}, {hi}]")
    return _Outcome(not problems, problems)


# -- the property ------------------------------------------------------------------------------------


def _rows(path: str, key: list[str]) -> list[tuple]:
    if not DeltaTable.is_deltatable(path):
        return []
    return sorted(tuple(r[k] for k in key) for r in DeltaTable(path).to_pyarrow_table(columns=key).to_pylist())


@settings(max_examples=40, deadline=None, database=None)
@given(canonical=st.lists(line_strategy(canonical_bases(), CANONICAL_FIELDS), max_size=10),
       segment=st.lists(line_strategy(segment_bases(), SEGMENT_FIELDS), max_size=10))
def test_any_landed_lines_end_in_bronze_quarantine_or_the_consent_count(canonical, segment):
    root = Path(tempfile.mkdtemp(prefix="growthlake-property-"))
    try:
        settings_ = Settings.from_env({"GROWTHLAKE_PII_KEY": PII_KEY, "GROWTHLAKE_MAX_LINE_BYTES": str(MAX_LINE)},
                                      root=root / "lake")
        paths = LakePaths.from_root(root / "lake", settings=settings_)
        folder = Path(paths.landing_events) / "date=2026-11-02" / "hour=05"
        folder.mkdir(parents=True)
        written = 0
        for name, lines in (("batch-1.jsonl", canonical), ("1762060200000.segment.jsonl", segment)):
            if lines:
                (folder / name).write_bytes(b"\n".join(lines) + b"\n")
                written += sum(1 for line in lines if len(line) > MAX_LINE or line.strip())

        first = ingest_partition(paths, KEY, plan=PLAN, masker=MASKER, auditor=row_level_gates)
        led = first.ledger
        assert first.published, first.gates
        assert led.lines_landed == written
        assert led.bronze_rows + led.quarantined + led.consent_dropped + led.duplicates_dropped == written
        assert led.reconciled
        check = verify_partition(paths, KEY)
        assert check.ok, check.detail
        note(f"bronze rows: {min(led.bronze_rows, 3)}{'+' if led.bronze_rows >= 3 else ''}")
        for reason in led.quarantined_by_reason:
            note(f"quarantined: {reason}")
        if led.consent_dropped:
            note("dropped for consent")

        bronze = _rows(paths.bronze_events, ["event_id", "_source_file", "_line_number", "properties"])
        quarantine = _rows(paths.bronze_quarantine, ["source_file", "line_number", "violation_type", "raw_line"])
        again = ingest_partition(paths, KEY, plan=PLAN, masker=MASKER, auditor=row_level_gates)
        assert (again.bronze_appended, again.quarantine_appended) == (0, 0)
        assert again.ledger.summary() == led.summary()
        assert _rows(paths.bronze_events, ["event_id", "_source_file", "_line_number", "properties"]) == bronze
        assert _rows(paths.bronze_quarantine,
                     ["source_file", "line_number", "violation_type", "raw_line"]) == quarantine
    finally:
        shutil.rmtree(root, ignore_errors=True)

"""The pieces the column-wise normalizer is built from agree with the per-line code they stand for."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from lake.contracts.validate import parse_timestamp
from lake.ingest.columnar import _micros
from lake.landing import LandingFile, iter_line_batches, iter_lines
from lake.paths import LakePaths
from lake.pii import looks_like_pii, maybe_pii

# -- lines ---------------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=400) | st.lists(st.sampled_from([b"\n", b"ab", b"x" * 30, b" ", b"{}"])).map(b"".join),
       chunk=st.integers(1, 64), limit=st.none() | st.integers(1, 40))
def test_line_batches_and_iter_lines_read_every_line_whatever_the_chunk_size(tmp_path_factory, data, chunk, limit):
    folder = tmp_path_factory.mktemp("landing")
    (folder / "f.jsonl").write_bytes(data)
    paths = LakePaths.from_root(folder)
    f = LandingFile(str(folder / "f.jsonl"), "f.jsonl", len(data))
    # What reading the whole file at once gives: its lines, numbered from 1, a longer one cut to limit + 1 bytes.
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    expected = [(n, raw if limit is None else raw[:limit + 1]) for n, raw in enumerate(lines, 1)]
    got = [(first + i, line) for first, lines in iter_line_batches(paths, f, chunk_size=chunk, max_line_bytes=limit)
           for i, line in enumerate(lines)]
    assert got == expected
    assert list(iter_lines(paths, f, chunk_size=chunk, max_line_bytes=limit)) == expected


# -- times ---------------------------------------------------------------------------------------------------


def _reference_micros(text: str) -> int | None:
    ts = parse_timestamp(text)
    return None if ts is None else round(ts.timestamp() * 1_000_000)


digits = st.integers(0, 99).map(lambda n: f"{n:02d}")
times = st.builds(
    lambda y, mo, d, h, mi, s, frac, tz: f"{y:04d}-{mo}-{d}T{h}:{mi}:{s}{frac}{tz}",
    st.integers(1900, 2200) | st.sampled_from([1970, 1971, 2099, 2100, 2026]), digits, digits, digits, digits, digits,
    st.sampled_from(["", ".1", ".12", ".123", ".1234", ".123456", ".999999", ".000001"]),
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "+01:00", "-05:30", "+23:59", "+24:00", "-12:60", "+0100", ""]),
)
# valid instants well beyond the years the columns parse: from the 2200s on, the reference's float
# rounding of microseconds differs from the exact value for many of them
instants = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.just(UTC)).map(
    lambda t: t.isoformat(timespec="microseconds").replace("+00:00", "Z"))


@settings(max_examples=400, deadline=None)
@given(texts=st.lists(times | instants | instants | st.text(max_size=30), min_size=1, max_size=40))
def test_times_parsed_by_the_columns_are_the_references(texts):
    ok, micros = _micros(pa.array(texts + [None], pa.string()))
    assert not ok[-1]
    for text, parsed, value in zip(texts, ok[:-1], micros[:-1], strict=True):
        if parsed:  # whatever the columns parse, they parse as the reference does, to the microsecond
            assert _reference_micros(text) == value, text


def test_the_usual_forms_are_parsed_by_the_columns():
    base = datetime(2026, 11, 2, 5, 9, 58, 120000, tzinfo=UTC)
    texts = ["2026-11-02T05:09:58.120Z", "2026-11-02T05:09:58.120000Z", "2026-11-02T06:09:58.120+01:00",
             "2026-11-02T00:09:58.120-05:00", "2024-02-29T00:00:00Z"]
    ok, micros = _micros(pa.array(texts))
    assert ok.tolist() == [True] * 5
    assert micros[:4].tolist() == [round(base.timestamp() * 1_000_000)] * 4
    bad = ["2026-02-29T00:00:00Z", "2026-11-02T24:00:00Z", "2026-11-02 05:09:58Z", "2100-01-01T00:00:00Z"]
    assert not _micros(pa.array(bad))[0].any()


# -- PII -------------------------------------------------------------------------------------------------------

pii_like = st.text(alphabet="ab@.%40&#;:+() -0123456789xX\\u\"\n", max_size=30)


@settings(max_examples=500, deadline=None)
@given(values=st.lists(pii_like | st.text(max_size=20) | st.uuids().map(str), min_size=1, max_size=30))
def test_maybe_pii_is_false_only_where_looks_like_pii_is(values):
    flags = pl.DataFrame({"v": values}).select(maybe_pii(pl.col("v")))["v"].to_list()
    for value, flag in zip(values, flags, strict=True):
        if looks_like_pii(value):
            assert flag, value

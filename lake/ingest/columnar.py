"""Column-wise normalization: the contract, consent and PII masking over a whole batch of lines.

:class:`ColumnarNormalizer` gives the outcomes of :class:`lake.ingest.normalize.Normalizer` (the
reference, one line at a time) for a batch of lines at once:

* each line is decoded by orjson, the reference's own parser (a C call per line; DuckDB's and
  polars' JSON functions were measured slower on these lines, see ``BENCHMARKS.md``), and the
  envelope of the whole batch is turned into Arrow columns in one strict conversion (a field of a
  type the envelope does not allow fails it, and the batch then checks its rows one by one);
* a Segment / RudderStack file's messages are mapped to the canonical fields column-wise
  (:mod:`lake.ingest.segment_columns`: the reference mapper runs once per distinct message shape);
* consent, the contract (ids, RFC 3339 times, clock skew, lateness, the landing hour's window,
  planned events, required properties, types, enums, ranges) and the PII decisions then run as
  polars expressions over columns; every distinct identifier, IP, user agent and property value is
  judged once (:func:`lake.pii.maybe_pii` filters, :func:`lake.pii.looks_like_pii` decides, the
  keyed hash is computed once per value);
* a line the columns cannot judge goes to the reference, unchanged: a line that does not decode
  to an object, is too long or blank, a ``consent_updated`` event (it may carry an erasure request),
  a field of an unexpected JSON type, a timestamp that is not of the form
  ``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff](Z|±HH:MM)`` in years 1971-2099, a number the plan bounds that
  float64 does not hold exactly, and every line that breaks the contract (its quarantine row —
  violation, detail, masked line — is the reference's). Those lines are counted
  (``python_fallback_lines``).

So a line ends in bronze through the columns only when every check the reference makes passes, and
its row is built from the same values with the same functions; whatever else, the reference decides.
The columns cost ~10 ms a batch: :func:`lake.ingest.parallel.normalize_files` leaves partitions
smaller than ``COLUMNAR_MIN_BYTES`` to the reference altogether.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from lake.contracts.plan import TrackingPlan
from lake.contracts.validate import EventValidator
from lake.ingest.normalize import NormalizedBatch, Normalizer, event_time_window, partition_counts
from lake.ingest.segment import SegmentMapper
from lake.ingest.segment_columns import map_segment
from lake.pii import PiiMasker, looks_like_pii, maybe_pii
from lake.schemas import BRONZE_EVENTS
from lake.useragent import parse_user_agent

__all__ = ["ColumnarNormalizer", "gc_paused"]

Converter = Callable[[dict[str, Any]], dict[str, Any]]

_ID_FIELDS = ("event_id", "event_name", "timestamp", "received_at", "user_id", "anonymous_id", "session_id")
_CTX_FIELDS = ("ip", "user_agent", "locale")
_STR = pa.string()
_PIECE = 4096  # lines decoded and taken apart together, while they are in the CPU's cache


def _envelope_type(consent_key: str) -> pa.StructType:
    consent = [(consent_key, pa.bool_())] + ([("marketing", pa.bool_())] if consent_key != "marketing" else [])
    return pa.struct([*((f, _STR) for f in _ID_FIELDS),
                      ("context", pa.struct([*((f, _STR) for f in _CTX_FIELDS), ("consent", pa.struct(consent))]))])


def _envelope_ok(ev: dict[str, Any], consent_key: str) -> bool:
    """Whether one event converts to the envelope type; a row-by-row stand-in for the batch conversion.

    Stricter than pyarrow (which takes an empty list for a struct): only ``None`` or a ``dict``
    where a struct is expected.
    """
    for f in _ID_FIELDS:
        v = ev.get(f)
        if v is not None and type(v) is not str:
            return False
    ctx = ev.get("context")
    if ctx is None:
        return True
    if type(ctx) is not dict:
        return False
    for f in _CTX_FIELDS:
        v = ctx.get(f)
        if v is not None and type(v) is not str:
            return False
    consent = ctx.get("consent")
    if consent is None:
        return True
    if type(consent) is not dict:
        return False
    return all(consent.get(k) is None or type(consent.get(k)) is bool for k in (consent_key, "marketing"))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (nested pauses are fine): decoding allocates many dicts that
    stay alive together, and each collection would walk every one of them again. Decoded JSON holds
    no reference cycles, so reference counting alone frees it."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass(frozen=True)
class _Piece:
    """A few thousand consecutive lines of one file, decoded: what the columns need of them."""

    lines: list[bytes]
    idx: np.ndarray  # the lines that decoded to an object (and fit the envelope), in order
    cols: dict[str, pa.Array]  # their canonical envelope fields, times parsed, properties' orjson text
    props: list[Any]  # their properties
    file_no: int
    source_file: str
    first_line: int
    key: str
    convert: Converter | None


def _decoder(limit: int) -> Callable[[bytes], dict[str, Any] | None]:
    loads, error = orjson.loads, orjson.JSONDecodeError

    def decode(raw: bytes) -> dict[str, Any] | None:
        if len(raw) > limit:
            return None
        try:
            ev = loads(raw)
        except error:
            return None
        return ev if type(ev) is dict else None

    return decode


# -- RFC 3339 times, column-wise --------------------------------------------------------------------
# The forms the columns parse (D a digit, S a sign); anything else (a space for the T, other fraction
# lengths, lower-case letters, years outside _YEARS) is left to parse_timestamp on the reference path.
_TS_FORMS = tuple(f"DDDD-DD-DDTDD:DD:DD{frac}{tz}" for frac in ("", ".DDD", ".DDDDDD") for tz in ("Z", "SDD:DD"))
# Where the reference's round(ts.timestamp() * 1e6) is the exact microsecond: before 2^52 µs (2112),
# the two float roundings (to seconds, then times 1e6) err by less than half a microsecond together.
_YEARS = (1971, 2099)
_DIGIT, _SIGN = ord("D"), ord("S")
_FORM_OF_LENGTH = {len(form): form for form in _TS_FORMS}  # the six forms have six lengths
assert len(_FORM_OF_LENGTH) == len(_TS_FORMS)


def _micros(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(parsed, microseconds since the epoch in UTC)`` of a string array, one of :data:`_TS_FORMS`
    per value; ``parsed`` is False where the value is null, of another form or not a valid time."""
    n = len(texts)
    ok = np.zeros(n, dtype=bool)
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return ok, out
    texts = texts.cast(pa.large_string())
    valid, offs_buf, data_buf = texts.buffers()
    offs = np.frombuffer(offs_buf, dtype=np.int64)[texts.offset:texts.offset + n + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    lens = np.diff(offs)
    present = ~np.asarray(texts.is_null(), dtype=bool) if valid is not None else np.ones(n, dtype=bool)
    for length in np.unique(lens[present]).tolist():
        form = _FORM_OF_LENGTH.get(length)
        if form is None:
            continue
        rows = np.flatnonzero(present & (lens == length))
        tmpl = np.frombuffer(form.encode(), dtype=np.uint8)
        m = data[offs[rows][:, None] + np.arange(len(form))]
        d = m.astype(np.int64) - 48
        good = np.all(np.where(tmpl == _DIGIT, (d >= 0) & (d <= 9),
                               np.where(tmpl == _SIGN, (m == ord("+")) | (m == ord("-")), m == tmpl)), axis=1)

        def num(start: int, width: int, d: np.ndarray = d) -> np.ndarray:
            v = np.zeros(len(d), dtype=np.int64)
            for i in range(start, start + width):
                v = v * 10 + d[:, i]
            return v

        y, mo, dd, hh, mi, ss = num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
        frac_len = {19: 0, 23: 3, 26: 6}[len(form) - (1 if form.endswith("Z") else 6)]
        frac = num(20, frac_len) * 10 ** (6 - frac_len) if frac_len else np.zeros(len(rows), np.int64)
        if form.endswith("Z"):
            offset = np.zeros(len(rows), np.int64)
            oh = om = offset
        else:
            at = len(form) - 6
            oh, om = num(at + 1, 2), num(at + 4, 2)
            offset = np.where(m[:, at] == ord("-"), -1, 1) * (oh * 3600 + om * 60)
        leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
        mo_ = np.clip(mo, 1, 12)
        dim = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[mo_ - 1] + ((mo_ == 2) & leap)
        good &= ((y >= _YEARS[0]) & (y <= _YEARS[1]) & (mo >= 1) & (mo <= 12) & (dd >= 1) & (dd <= dim)
                 & (hh <= 23) & (mi <= 59) & (ss <= 59) & (oh <= 23) & (om <= 59))
        # days from the civil date (H. Hinnant's algorithm; the years here are positive)
        yy = y - (mo_ <= 2)
        era = yy // 400
        yoe = yy - era * 400
        doy = (153 * (mo_ + np.where(mo_ > 2, -3, 9)) + 2) // 5 + dd - 1
        days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
        ok[rows] = good
        out[rows] = ((days * 86400 + hh * 3600 + mi * 60 + ss - offset) * 1_000_000 + frac) * good
    return ok, out


class ColumnarNormalizer:
    """The reference :class:`Normalizer`'s outcomes, computed a batch of lines at a time.

    Every line is handed either to the columns or, unchanged, to an embedded reference normalizer;
    :meth:`finish` merges both into one :class:`NormalizedBatch` in (file, line) order.
    """

    def __init__(self, plan: TrackingPlan, masker: PiiMasker, *, ingested_at: datetime | None = None,
                 validator: EventValidator | None = None, max_line_bytes: int | None = None) -> None:
        """Args:
            plan: the tracking plan to enforce.
            masker: the keyed pseudonymizer.
            ingested_at: the ``_ingested_at`` of every row (default: now).
            validator: a compiled validator of ``plan`` (default: compiled here).
            max_line_bytes: longer lines are quarantined as ``line_too_long`` unread (default:
                ``GROWTHLAKE_MAX_LINE_BYTES`` of :func:`lake.settings.current`).
        """
        self.reference = Normalizer(plan, masker, ingested_at=ingested_at, validator=validator,
                                    max_line_bytes=max_line_bytes)
        self.plan, self.masker = plan, masker
        self.ingested_at = self.reference.ingested_at
        self.max_line_bytes = self.reference.max_line_bytes
        self._decode = _decoder(self.max_line_bytes)
        self._key = plan.consent_required
        self._envelope = _envelope_type(self._key)
        self._specs, self._required = _plan_frames(plan)
        self._enums = (self._specs.select("event_name", "key", pl.col("enum").alias("value"))
                       .explode("value").drop_nulls().unique().with_columns(_hit=pl.lit(True)))
        self._windows: dict[str, tuple[int, int]] = {}
        self._keys_seen: set[str] = set()
        self._parts: list[pa.Table] = []
        self._order: list[np.ndarray] = []  # (file, line) of the parts' rows, as file << 32 | line
        self._files: dict[str, int] = {}  # source file -> order of first appearance
        self._names: list[str] = []
        self._buf: list[_Piece] = []
        self._buffered = 0
        self.batch_lines = 65_536
        self.lines = 0  # lines judged by the columns (the reference counts its own)
        self.consent_dropped = 0
        self._lines_by_key: Counter[str] = Counter()  # the same, per landing partition
        self._consent_by_key: Counter[str] = Counter()
        self.fallback_lines = 0

    # -- entry points -------------------------------------------------------------------------
    def add_lines(self, lines: list[bytes], source_file: str, first_line: int, landing_partition: str,
                  convert: Converter | None = None) -> None:
        """Process consecutive landed lines of one file (without newlines), numbered from ``first_line``.

        ``convert`` maps a parsed line of another format (a Segment message) to the canonical model
        first, as :meth:`Normalizer.add_line` does. Lines are buffered and judged in batches of
        ``batch_lines`` (per-batch costs are then paid once for many small files).
        """
        file_no = self._files.get(source_file)
        if file_no is None:
            file_no = self._files[source_file] = len(self._names)
            self._names.append(source_file)
        with gc_paused():
            for lo in range(0, len(lines), _PIECE):
                self._add_piece(lines[lo:lo + _PIECE], file_no, source_file, first_line + lo, landing_partition,
                                convert)
            if self._buffered >= self.batch_lines:
                self._flush()

    def _add_piece(self, lines: list[bytes], file_no: int, source_file: str, first_line: int, key: str,
                   convert: Converter | None) -> None:
        """Decode a few thousand lines and take from them, while they are in the cache, what the
        columns need: the envelope's fields (Arrow) and each event's properties (object and text)."""
        decoded = list(map(self._decode, lines))
        if isinstance(convert, SegmentMapper):  # mapped column-wise
            idx = [i for i, ev in enumerate(decoded) if ev is not None]
            msgs: list[dict[str, Any]] = [ev for ev in decoded if ev is not None]
            seg = map_segment(msgs, convert, consent_key=self._key, micros=_micros)
            idx = [idx[k] for k in seg.keep.tolist()]
            f = seg.fields
            rec_ok, rec = _micros(f["received_at"])
            cols = {**{k: f[k] for k in _ID_FIELDS if k not in ("timestamp", "received_at")},
                    **{k: f[k] for k in _CTX_FIELDS},
                    "_granted": f["granted"], "_marketing": f["marketing"], "_tsok": pa.array(seg.ts_ok),
                    "_ts": pa.array(seg.ts), "_recok": pa.array(rec_ok), "_rec": pa.array(rec)}
            props = seg.props
        else:
            if convert is not None:
                decoded = [None if ev is None else convert(ev) for ev in decoded]
            idx = [i for i, ev in enumerate(decoded) if ev is not None]
            evs: list[dict[str, Any]] = [ev for ev in decoded if ev is not None]
            try:
                env = pa.array(evs, self._envelope)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                keep = [k for k, ev in enumerate(evs) if _envelope_ok(ev, self._key)]
                evs, idx = [evs[k] for k in keep], [idx[k] for k in keep]
                env = pa.array(evs, self._envelope)
            ctx = env.field("context")
            consent = ctx.field("consent")
            ts_ok, ts = _micros(env.field("timestamp"))
            rec_ok, rec = _micros(env.field("received_at"))
            cols = {**{k: env.field(k) for k in _ID_FIELDS if k not in ("timestamp", "received_at")},
                    **{k: ctx.field(k) for k in _CTX_FIELDS},
                    "_granted": consent.field(self._key),
                    "_marketing": consent.field("marketing" if self._key != "marketing" else self._key),
                    "_tsok": pa.array(ts_ok), "_ts": pa.array(ts), "_recok": pa.array(rec_ok), "_rec": pa.array(rec)}
            props = [ev.get("properties") for ev in evs]
        cols["_ptext"] = pa.array(_dumps_all(props), pa.binary())
        self._buf.append(_Piece(lines, np.array(idx, dtype=np.int64), cols, props, file_no, source_file,
                                first_line, key, convert))
        self._buffered += len(lines)

    def finish(self) -> NormalizedBatch:
        self._flush()
        ref = self.reference.finish()
        bronze = ref.bronze
        if self._parts:  # the reference's rows go back to their (file, line) place among the columns' rows
            ours = pa.concat_tables(self._parts)
            theirs = (np.array([self._files[f] for f in ref.bronze["_source_file"].to_pylist()], dtype=np.int64) << 32
                      | ref.bronze["_line_number"].to_numpy().astype(np.int64))
            bronze = _merge(ours, np.concatenate(self._order), ref.bronze, theirs)
        return NormalizedBatch(
            lines_landed=ref.lines_landed + self.lines,
            consent_dropped=ref.consent_dropped + self.consent_dropped,
            bronze=bronze,
            quarantine=ref.quarantine,
            revocations=ref.revocations,
            python_fallback_lines=self.fallback_lines,
            by_partition=partition_counts(self._lines_by_key + self.reference.lines_by_partition,
                                          self._consent_by_key + self.reference.consent_by_partition),
        )

    def _flush(self) -> None:
        buf, self._buf, self._buffered = self._buf, [], 0
        if not buf:
            return
        props = list(chain.from_iterable(p.props for p in buf))
        counts = np.array([len(p.idx) for p in buf])
        cols = pl.DataFrame({name: pa.concat_arrays([p.cols[name] for p in buf]) for name in buf[0].cols})
        meta = pl.DataFrame({
            "_file": pl.Series(np.repeat([p.file_no for p in buf], counts), dtype=pl.Int32),
            "_line": pl.Series(np.concatenate([p.first_line + p.idx for p in buf]), dtype=pl.Int32),
            "_key": pl.Series([p.key for p in buf], dtype=pl.String).gather(np.repeat(np.arange(len(buf)), counts)),
        })
        self._keys_seen = {p.key for p in buf}
        done = self._judge(cols.hstack(meta), props)  # positions among the decoded events
        sizes = np.array([len(p.lines) for p in buf])
        starts = np.cumsum(sizes) - sizes  # of each piece among the buffer's lines
        line_at = np.concatenate([p.idx for p in buf]) + np.repeat(starts, counts)
        handled = np.zeros(int(sizes.sum()), dtype=bool)
        handled[line_at[done]] = True
        rest = np.flatnonzero(~handled)
        pieces = np.searchsorted(starts, rest, side="right") - 1
        for i, p in zip(rest.tolist(), pieces.tolist(), strict=True):
            piece, j = buf[p], i - int(starts[p])
            self.fallback_lines += 1
            self.reference.add_line(piece.lines[j], piece.source_file, piece.first_line + j, piece.key, piece.convert)

    # -- the columns --------------------------------------------------------------------------
    def _window(self, landing_partition: str) -> tuple[int, int]:
        w = self._windows.get(landing_partition)
        if w is None:
            lo, hi = event_time_window(self.plan, landing_partition)
            w = self._windows[landing_partition] = (_us(lo), _us(hi))
        return w

    def _judge(self, df: pl.DataFrame, props: list[Any]) -> np.ndarray:
        """Decide the events the columns can; return their positions in ``df`` (bronze or consent)."""
        if not props:
            return np.zeros(0, dtype=np.int64)
        # consent_updated may withdraw consent (an erasure request): always the reference's.
        cu = (pl.col("event_name") == "consent_updated").fill_null(False)
        granted = (pl.col("_granted") == True).fill_null(False)  # noqa: E712 (null is not granted)
        flags = df.select(drop=~cu & ~granted, cand=~cu & granted & self._envelope_rules())
        dropped = np.flatnonzero(flags["drop"].to_numpy())
        cand = np.flatnonzero(flags["cand"].to_numpy())
        kept_at, texts = self._properties_ok(df, cand, props)
        kept = df[kept_at].with_columns(_props=texts)
        self.lines += len(dropped) + kept.height
        self.consent_dropped += len(dropped)
        keys = df["_key"]
        self._consent_by_key.update(_value_counts(keys.gather(dropped)))
        self._lines_by_key.update(_value_counts(keys.gather(dropped)))
        self._lines_by_key.update(_value_counts(kept["_key"]))
        if kept.height:
            self._parts.append(self._rows(kept))
            self._order.append(kept["_file"].to_numpy().astype(np.int64) << 32 | kept["_line"].to_numpy())
        return np.concatenate([dropped, kept_at]).astype(np.int64)

    def _envelope_rules(self) -> pl.Expr:
        """The envelope rules of the contract: an event_id, a planned event, two RFC 3339 times within
        the clock skew and lateness of each other, and an event time the landing hour accepts."""
        plan = self.plan
        keys = {k: self._window(k) for k in self._keys_seen}
        lo = pl.col("_key").replace_strict({k: w[0] for k, w in keys.items()}, return_dtype=pl.Int64)
        hi = pl.col("_key").replace_strict({k: w[1] for k, w in keys.items()}, return_dtype=pl.Int64)
        skew, late = plan.max_clock_skew_seconds * 1_000_000, plan.max_lateness_days * 86_400_000_000
        return ((pl.col("event_id").str.len_bytes() > 0)
                & pl.col("event_name").is_in(list(plan.events))
                & pl.col("_tsok") & pl.col("_recok") & pl.col("_ptext").is_not_null()
                & (pl.col("_ts") - pl.col("_rec") <= skew) & (pl.col("_rec") - pl.col("_ts") <= late)
                & pl.col("_ts").is_between(lo, hi)).fill_null(False)

    def _properties_ok(self, df: pl.DataFrame, cand: np.ndarray, props: list[Any]) -> tuple[np.ndarray, pl.Series]:
        """Of the candidates (positions in ``df``), those whose properties keep the plan, in order, and
        their properties as bronze stores them. Properties are judged once per distinct (event,
        properties object): the object's orjson text (what bronze stores when nothing is masked)
        stands for it — equal texts, equal JSON values."""
        if len(cand) == 0:
            return cand, pl.Series("_props", [], dtype=pl.Binary)
        narrow = df.select("event_name", "_ptext")[cand].with_columns(_at=pl.Series(cand, dtype=pl.Int64))
        firsts = narrow.unique(["event_name", "_ptext"], keep="first", maintain_order=True)
        verdicts = firsts.select("event_name", "_ptext").with_columns(
            self._judge_properties(firsts["_at"].to_list(), firsts["event_name"].to_list(), props))
        judged = (narrow.join(verdicts, on=["event_name", "_ptext"], how="left", maintain_order="left")
                  .sort("_at").filter(pl.col("_pok")))
        return judged["_at"].to_numpy(), judged.select(pl.coalesce("_masked", "_ptext").alias("_props")).to_series()

    def _judge_properties(self, rows: list[int], names: list[str], all_props: list[Any]) -> list[pl.Series]:
        """Per event (one per distinct properties object): whether its properties keep the plan
        (``_pok``), and their text with the PII masked when any is (``_masked``, else null)."""
        props = [all_props[i] or {} for i in rows]
        lens = list(map(len, props))
        values = list(chain.from_iterable(map(dict.values, props)))
        at = np.repeat(np.arange(len(rows), dtype=np.uint32), lens)
        pairs = pl.DataFrame({
            "_r": at,
            "event_name": pl.Series(names, dtype=pl.String).gather(at),
            "key": pl.Series(list(chain.from_iterable(props)), dtype=pl.String),
            "kind": pl.Series(list(map(_kind, values)), dtype=pl.Int8),
            "text": pl.Series([v if type(v) is str else None for v in values], dtype=pl.String),
            "num": pl.Series([float(v) if type(v) in (int, float) and _exact(v) else None for v in values],
                             dtype=pl.Float64),
        }).join(self._specs, on=["event_name", "key"], how="left", maintain_order="left")
        # an enumerated value must be one of the plan's (string enums only: others are the reference's)
        hits = pairs.join(self._enums, left_on=["event_name", "key", "text"],
                          right_on=["event_name", "key", "value"], how="left", maintain_order="left")["_hit"]
        kind, typ = pl.col("kind"), pl.col("type")
        pair_ok = pairs.select((
            typ.is_not_null()
            & ((kind == _NULL) | (
                (((typ == "string") & (kind == _STRING)) | ((typ == "integer") & (kind == _INT))
                 | ((typ == "number") & kind.is_in([_INT, _FLOAT])) | ((typ == "boolean") & (kind == _BOOL)))
                & (~pl.col("ranged") | (typ.is_in(["integer", "number"]) & pl.col("num").is_not_null()
                                       & (pl.col("num") >= pl.col("lo")).fill_null(True)
                                       & (pl.col("num") <= pl.col("hi")).fill_null(True)))
                & (~pl.col("enumerated") | ((typ == "string") & hits.fill_null(False)))
            ))
        ).fill_null(False).alias("ok"))["ok"]
        n = len(rows)
        bad = np.zeros(n, dtype=bool)
        bad[at[~pair_ok.to_numpy()]] = True
        # every required property present and not null
        present = pairs.filter(kind != _NULL).select("_r", "event_name", "key")
        got = (present.join(self._required, on=["event_name", "key"], how="semi").group_by("_r").len("got"))
        need = pl.DataFrame({"_r": np.arange(n, dtype=np.uint32), "event_name": names}).join(
            self._required.group_by("event_name").len("need"), on="event_name", how="left", maintain_order="left")
        short = need.join(got, on="_r", how="left", maintain_order="left").select(
            pl.col("need").fill_null(0) != pl.col("got").fill_null(0))
        bad |= short.to_series().to_numpy()
        # PII: plan-marked properties, and string values that look like PII (judged once per value)
        strings = pairs.filter(kind == _STRING)["text"].unique()
        suspects = strings.filter(strings.to_frame("v").select(maybe_pii(pl.col("v"))).to_series())
        pii_values = [v for v in suspects.to_list() if looks_like_pii(v)]
        masked = pairs.filter((pl.col("pii").fill_null(False) & (kind != _NULL))
                               | pl.col("text").is_in(pii_values).fill_null(False)).select("_r", "key")
        to_mask: dict[int, list[str]] = {}
        for r, k in masked.iter_rows():
            to_mask.setdefault(r, []).append(k)
        out: list[bytes | None] = [None] * n
        for r, ks in to_mask.items():
            if not bad[r]:
                p = dict(props[r])
                for k in ks:
                    p[k] = self.masker.hash(p[k])
                out[r] = orjson.dumps(p)
        return [pl.Series("_pok", ~bad), pl.Series("_masked", out, dtype=pl.Binary)]

    def _rows(self, kept: pl.DataFrame) -> pa.Table:
        masker = self.masker
        # identifiers that are themselves an email, IP or phone number are hashed whole
        idents = {col: _hashed_where_pii(kept[col], masker, repeats=col != "event_id")
                  for col in ("event_id", "user_id", "anonymous_id", "session_id", "locale")}
        ips = kept["ip"]
        ip_hash = ips.replace_strict({v: masker.hash(v) for v in ips.drop_nulls().unique().to_list()},
                                     default=None, return_dtype=pl.String)
        uas = kept["user_agent"]
        parsed = {v: parse_user_agent(v) for v in uas.drop_nulls().unique().to_list()}
        other = parse_user_agent(None)
        browser = uas.replace_strict({k: v[0] for k, v in parsed.items()}, default=other[0], return_dtype=pl.String)
        device = uas.replace_strict({k: v[1] for k, v in parsed.items()}, default=other[1], return_dtype=pl.String)
        n = kept.height
        arrays = {
            "event_id": idents["event_id"].to_arrow(),
            "event_name": kept["event_name"].to_arrow(),
            "event_ts": kept["_ts"].to_arrow().cast(BRONZE_EVENTS.field("event_ts").type),
            "received_at": kept["_rec"].to_arrow().cast(BRONZE_EVENTS.field("received_at").type),
            "user_id": idents["user_id"].to_arrow(),
            "anonymous_id": idents["anonymous_id"].to_arrow(),
            "session_id": idents["session_id"].to_arrow(),
            "properties": kept["_props"].to_arrow().cast(pa.large_string()),
            "ip_hash": ip_hash.to_arrow(),
            "browser_family": browser.to_arrow(),
            "device_type": device.to_arrow(),
            "locale": idents["locale"].to_arrow(),
            "consent_marketing": kept["_marketing"].to_arrow(),
            "plan_version": pa.array([self.plan.version] * n, pa.string()),
            "_landing_partition": kept["_key"].to_arrow(),
            "_source_file": kept["_file"].replace_strict(dict(enumerate(self._names)),
                                                         return_dtype=pl.String).to_arrow(),
            "_line_number": kept["_line"].to_arrow(),
            "_ingested_at": pa.array([self.ingested_at] * n, BRONZE_EVENTS.field("_ingested_at").type),
        }
        arrays["event_date"] = arrays["event_ts"].cast(pa.date32())
        cols = [arrays[f.name].cast(f.type) for f in BRONZE_EVENTS]
        return pa.Table.from_arrays(cols, schema=BRONZE_EVENTS)


# -- helpers ----------------------------------------------------------------------------------------
_NULL, _STRING, _INT, _FLOAT, _BOOL, _OTHER = 0, 1, 2, 3, 4, 5
_KINDS = {type(None): _NULL, str: _STRING, int: _INT, float: _FLOAT, bool: _BOOL}
_EXACT = 2**53


def _value_counts(keys: pl.Series) -> dict[str, int]:
    if keys.is_empty():
        return {}
    counts = keys.value_counts()
    return dict(zip(counts[keys.name].to_list(), counts["count"].to_list(), strict=True))


def _kind(value: Any) -> int:
    return _KINDS.get(type(value), _OTHER)


def _exact(value: int | float) -> bool:
    """A number that float64 holds exactly enough for the plan's range checks (ints up to 2^53)."""
    return type(value) is float or -_EXACT <= value <= _EXACT


def _us(ts: datetime) -> int:
    delta = ts.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _merge(ours: pa.Table, our_keys: np.ndarray, theirs: pa.Table, their_keys: np.ndarray) -> pa.Table:
    """Two tables of rows in (file, line) order, merged in that order (keys: file << 32 | line)."""
    if theirs.num_rows == 0:
        return ours
    if theirs.num_rows > 256:  # many: one take
        order = np.argsort(np.concatenate([our_keys, their_keys]), kind="stable")
        return pa.concat_tables([ours, theirs]).take(pa.array(order))
    pieces, last = [], 0
    for r, at in enumerate(np.searchsorted(our_keys, their_keys).tolist()):
        pieces += [ours.slice(last, at - last), theirs.slice(r, 1)]
        last = at
    pieces.append(ours.slice(last))
    return pa.concat_tables(pieces)


def _dumps_all(props: list[Any]) -> list[bytes | None]:
    """orjson text of each properties value as the reference stores it (None: ``{}``); None where it
    is not an object (a contract violation) or cannot be written (nested deeper than orjson writes)."""
    dumps = orjson.dumps
    if all(type(p) is dict or p is None for p in props):
        try:
            return [dumps(p) if p else b"{}" for p in props]
        except orjson.JSONEncodeError:
            pass
    out: list[bytes | None] = []
    for p in props:
        try:
            out.append((dumps(p) if p else b"{}") if type(p) is dict or p is None else None)
        except orjson.JSONEncodeError:
            out.append(None)
    return out


def _hashed_where_pii(values: pl.Series, masker: PiiMasker, *, repeats: bool) -> pl.Series:
    """``values`` with each one that looks like PII replaced by its keyed hash (judged once per value;
    ``repeats``: the values repeat a lot, so the test runs on the distinct ones)."""
    pool = values.unique() if repeats else values
    suspects = pool.filter(pool.to_frame("v").select(maybe_pii(pl.col("v")).fill_null(False)).to_series())
    hashed = {v: masker.hash(v) for v in suspects.unique().to_list() if looks_like_pii(v)}
    return values.replace(hashed) if hashed else values


def _plan_frames(plan: TrackingPlan) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The plan as two tables: one row per (event, property) with its rules; one per required property."""
    rows = []
    required = []
    for name, spec in plan.events.items():
        for p in spec.properties.values():
            exact_bounds = all(b is None or (type(b) in (int, float) and -_EXACT <= b <= _EXACT)
                               for b in (p.min, p.max))
            string_enum = p.enum is not None and p.type == "string" and all(type(v) is str for v in p.enum)
            rows.append({
                "event_name": name, "key": p.name, "type": p.type if exact_bounds else "<unchecked>",
                "enumerated": p.enum is not None,
                "enum": list(p.enum) if string_enum and p.enum is not None else [],
                "ranged": p.min is not None or p.max is not None,
                "lo": float(p.min) if p.min is not None else None, "hi": float(p.max) if p.max is not None else None,
                "pii": p.pii,
            })
            if p.required:
                required.append({"event_name": name, "key": p.name})
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "event_name": pl.String, "key": pl.String, "type": pl.String, "enumerated": pl.Boolean,
        "enum": pl.List(pl.String), "ranged": pl.Boolean, "lo": pl.Float64, "hi": pl.Float64, "pii": pl.Boolean}
    return (pl.DataFrame(rows, schema=schema),
            pl.DataFrame(required, schema={"event_name": pl.String, "key": pl.String}))


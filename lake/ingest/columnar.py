"""Column-wise normalization: the contract, consent and PII masking over a whole batch of lines.

:class:`ColumnarNormalizer` gives the outcomes of :class:`lake.ingest.normalize.Normalizer` (the
reference, one line at a time) for a batch of lines at once:

* each line is decoded by orjson, the reference's own parser (a C call per line; DuckDB's and
  polars' JSON functions were measured slower on these lines, see ``BENCHMARKS.md``), and the
  envelope of the whole batch is turned into Arrow columns in one strict conversion (a field of a
  type the envelope does not allow fails it, and the batch then checks its rows one by one);
* consent, the contract (ids, RFC 3339 times, clock skew, lateness, the landing hour's window,
  planned events, required properties, types, enums, ranges) and the PII decisions then run as
  polars expressions over columns; every distinct identifier, IP, user agent and property value is
  judged once (:func:`lake.pii.maybe_pii` filters, :func:`lake.pii.looks_like_pii` decides, the
  keyed hash is computed once per value);
* a line the columns cannot judge goes to the reference, unchanged: a line that does not decode
  to an object, is too long or blank, a ``consent_updated`` event (it may carry an erasure request),
  a field of an unexpected JSON type, a timestamp that is not of the form
  ``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff](Z|±HH:MM)`` in years 1971-2099, a number the plan bounds that float64 does not hold exactly, and
  every line that breaks the contract (its quarantine row — violation, detail, masked line — is
  the reference's). Those lines are counted (``python_fallback_lines``).

So a line ends in bronze through the columns only when every check the reference makes passes, and
its row is built from the same values with the same functions; whatever else, the reference decides.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from lake.contracts.plan import TrackingPlan
from lake.contracts.validate import EventValidator
from lake.ingest.normalize import NormalizedBatch, Normalizer, event_time_window
from lake.pii import PiiMasker, looks_like_pii, maybe_pii
from lake.schemas import BRONZE_EVENTS
from lake.useragent import parse_user_agent

__all__ = ["ColumnarNormalizer"]

Converter = Callable[[dict[str, Any]], dict[str, Any]]

_ID_FIELDS = ("event_id", "event_name", "timestamp", "received_at", "user_id", "anonymous_id", "session_id")
_CTX_FIELDS = ("ip", "user_agent", "locale")
_STR = pa.string()


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
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: decoding a batch allocates many dicts that all stay alive,
    and each collection would walk every one of them again (JSON objects hold no cycles)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


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
# The one form the columns parse; anything else (a space for the T, other fraction lengths, years
# outside 1971-2199) is left to lake.contracts.validate.parse_timestamp on the reference path.
_TS_FORM = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3}|\.[0-9]{6})?(?:Z|[+-][0-9]{2}:[0-9]{2})$"
# Where the reference's round(ts.timestamp() * 1e6) is the exact microsecond: before 2^52 µs (2112), the two
# float roundings (seconds, then times 1e6) err by less than half a microsecond together.
_YEARS = (1971, 2099)


def _int(s: pl.Expr, start: int | pl.Expr, length: int) -> pl.Expr:
    return s.str.slice(start, length).cast(pl.Int64, strict=False)


def _micros(col: str) -> tuple[pl.Expr, pl.Expr]:
    """``(ok, microseconds since the epoch in UTC)`` of an RFC 3339 text column (ok: parsed here)."""
    s = pl.col(col)
    n = s.str.len_bytes().cast(pl.Int64)
    zulu = s.str.ends_with("Z")
    frac_len = n - 19 - pl.when(zulu).then(1).otherwise(6)  # 0, 4 (".fff") or 7 (".ffffff")
    y, m, d = _int(s, 0, 4), _int(s, 5, 2), _int(s, 8, 2)
    hh, mi, ss = _int(s, 11, 2), _int(s, 14, 2), _int(s, 17, 2)
    frac = pl.when(frac_len == 4).then(_int(s, 20, 3) * 1000).when(frac_len == 7).then(_int(s, 20, 6)).otherwise(0)
    sign = pl.when(zulu).then(0).when(s.str.slice(n - 6, 1) == "-").then(-1).otherwise(1)
    oh = pl.when(zulu).then(0).otherwise(_int(s, n - 5, 2))
    om = pl.when(zulu).then(0).otherwise(_int(s, n - 2, 2))
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    dim = (pl.when(m == 2).then(pl.when(leap).then(29).otherwise(28))
           .when(m.is_in([4, 6, 9, 11])).then(30).otherwise(31))
    ok = (s.str.contains(_TS_FORM) & y.is_between(*_YEARS) & m.is_between(1, 12) & d.is_between(1, 31) & (d <= dim)
          & (hh <= 23) & (mi <= 59) & (ss <= 59) & (oh <= 23) & (om <= 59)).fill_null(False)
    # days from the civil date (H. Hinnant's algorithm; years are positive here)
    yy = y - (m <= 2).cast(pl.Int64)
    era = yy // 400
    yoe = yy - era * 400
    doy = (153 * (m + pl.when(m > 2).then(-3).otherwise(9)) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    secs = days * 86400 + hh * 3600 + mi * 60 + ss - sign * (oh * 3600 + om * 60)
    return ok, pl.when(ok).then(secs * 1_000_000 + frac)


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
        self._enums = self._specs.select("event_name", "key", pl.col("enum").alias("value")).explode("value").drop_nulls()
        self._pii = {name: spec.pii for name, spec in plan.events.items()}
        self._windows: dict[str, tuple[int, int]] = {}
        self._parts: list[pa.Table] = []
        self._files: dict[str, int] = {}  # source file -> order of first appearance
        self._names: list[str] = []
        self._buf: list[tuple] = []
        self._buffered = 0
        self.batch_lines = 65_536
        self.lines = 0  # lines judged by the columns (the reference counts its own)
        self.consent_dropped = 0
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
        with _gc_paused():
            decoded = list(map(self._decode, lines))
            if convert is not None:
                decoded = [None if ev is None else convert(ev) for ev in decoded]
        self._buf.append((lines, decoded, file_no, source_file, first_line, landing_partition, convert))
        self._buffered += len(lines)
        if self._buffered >= self.batch_lines:
            self._flush()

    def finish(self) -> NormalizedBatch:
        self._flush()
        ref = self.reference.finish()
        bronze = pa.concat_tables([*self._parts, ref.bronze]) if self._parts else ref.bronze
        if self._parts and ref.bronze.num_rows:  # the reference's rows go back to their (file, line) place
            order = pl.DataFrame({
                "f": pl.Series(bronze["_source_file"]).replace_strict(self._files, return_dtype=pl.Int64),
                "l": pl.Series(bronze["_line_number"]),
            }).with_row_index("i").sort(["f", "l"])["i"]
            bronze = bronze.take(order.to_arrow())
        return NormalizedBatch(
            lines_landed=ref.lines_landed + self.lines,
            consent_dropped=ref.consent_dropped + self.consent_dropped,
            bronze=bronze,
            quarantine=ref.quarantine,
            revocations=ref.revocations,
            python_fallback_lines=self.fallback_lines,
        )

    def _flush(self) -> None:
        buf, self._buf, self._buffered = self._buf, [], 0
        if not buf:
            return
        decoded = list(chain.from_iterable(piece[1] for piece in buf))
        idx = [i for i, ev in enumerate(decoded) if ev is not None]
        evs = [decoded[i] for i in idx]
        del decoded
        try:
            env = pa.array(evs, self._envelope)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            keep = [k for k, ev in enumerate(evs) if _envelope_ok(ev, self._key)]
            evs, idx = [evs[k] for k in keep], [idx[k] for k in keep]
            env = pa.array(evs, self._envelope)
        sizes = np.array([len(piece[0]) for piece in buf])
        piece_of = np.repeat(np.arange(len(buf)), sizes)  # per line of the buffer
        starts = np.cumsum(sizes) - sizes
        line_no = np.array([piece[4] for piece in buf])[piece_of] + (np.arange(len(piece_of)) - starts[piece_of])
        keys = sorted({piece[5] for piece in buf})
        key_no = np.array([keys.index(piece[5]) for piece in buf])[piece_of]
        files = np.array([piece[2] for piece in buf])[piece_of]
        at = np.array(idx, dtype=np.int64)
        meta = pl.DataFrame({
            "_file": pl.Series(files[at], dtype=pl.Int32),
            "_line": pl.Series(line_no[at], dtype=pl.Int32),
            "_key": pl.Series(np.array(keys, dtype=object)[key_no[at]] if len(at) else [], dtype=pl.String),
        })
        handled = np.zeros(len(piece_of), dtype=bool)
        handled[at[self._judge(evs, env, meta)]] = True
        lines = list(chain.from_iterable(piece[0] for piece in buf))
        for i in np.flatnonzero(~handled).tolist():
            _, _, _, source_file, _, key, convert = buf[piece_of[i]]
            self.fallback_lines += 1
            self.reference.add_line(lines[i], source_file, int(line_no[i]), key, convert)

    # -- the columns --------------------------------------------------------------------------
    def _window(self, landing_partition: str) -> tuple[int, int]:
        w = self._windows.get(landing_partition)
        if w is None:
            lo, hi = event_time_window(self.plan, landing_partition)
            w = self._windows[landing_partition] = (_us(lo), _us(hi))
        return w

    def _judge(self, evs: list[dict[str, Any]], env: pa.StructArray, meta: pl.DataFrame) -> np.ndarray:
        """Decide the events the columns can; return their positions in ``evs`` (bronze or consent)."""
        if not evs:
            return np.zeros(0, dtype=np.int64)
        ctx = env.field("context")
        consent = ctx.field("consent")
        df = pl.DataFrame({
            **{f: pl.Series(env.field(f)) for f in _ID_FIELDS},
            **{f: pl.Series(ctx.field(f)) for f in _CTX_FIELDS},
            "_granted": pl.Series(consent.field(self._key)),
            "_marketing": pl.Series(consent.field("marketing")) if self._key != "marketing"
            else pl.Series(consent.field(self._key)),
        }).hstack(meta).with_row_index("_i")
        # consent_updated may withdraw consent (an erasure request): always the reference's.
        df = df.with_columns(_cu=(pl.col("event_name") == "consent_updated").fill_null(False),
                             _ok=(pl.col("_granted") == True).fill_null(False))  # noqa: E712 (null is not granted)
        dropped = df.filter(~pl.col("_cu") & ~pl.col("_ok"))["_i"].to_numpy()
        cand = df.filter(~pl.col("_cu") & pl.col("_ok"))
        kept, pairs = self._validate(cand, evs)
        self.lines += len(dropped) + kept.height
        self.consent_dropped += len(dropped)
        if kept.height:
            self._parts.append(self._rows(kept, pairs, evs))
        return np.concatenate([dropped, kept["_i"].to_numpy()]).astype(np.int64) if kept.height else dropped

    def _validate(self, cand: pl.DataFrame, evs: list[dict[str, Any]]) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The candidates that break no rule of the contract (a superset of the reference's checks
        is not needed: a rule broken, or not judged here, sends the line to the reference)."""
        plan = self.plan
        keys = cand["_key"].unique().to_list()
        windows = pl.DataFrame({"_key": keys, "_lo": [self._window(k)[0] for k in keys],
                                "_hi": [self._window(k)[1] for k in keys]},
                               schema={"_key": pl.String, "_lo": pl.Int64, "_hi": pl.Int64})
        cand = cand.join(windows, on="_key", how="left")
        skew, late = plan.max_clock_skew_seconds * 1_000_000, plan.max_lateness_days * 86_400_000_000
        ts_ok, ts = _micros("timestamp")
        rec_ok, rec = _micros("received_at")
        cand = cand.with_columns(_ts=ts, _rec=rec, _tsok=ts_ok, _recok=rec_ok).filter(
            (pl.col("event_id").str.len_bytes() > 0)
            & pl.col("event_name").is_in(list(plan.events))
            & pl.col("_tsok") & pl.col("_recok")
            & (pl.col("_ts") - pl.col("_rec") <= skew) & (pl.col("_rec") - pl.col("_ts") <= late)
            & pl.col("_ts").is_between(pl.col("_lo"), pl.col("_hi"))
        )
        if cand.height == 0:
            return cand, pl.DataFrame()
        # properties: one row per (event, property), checked against the plan's table of properties
        rows = cand["_i"].to_list()
        props = [evs[i].get("properties") for i in rows]
        shape_ok = [p is None or type(p) is dict for p in props]
        props = [p if type(p) is dict else {} for p in props]
        lens = list(map(len, props))
        values = list(chain.from_iterable(map(dict.values, props)))
        pairs = pl.DataFrame({
            "_i": pl.Series(rows, dtype=pl.UInt32).repeat_by(pl.Series(lens, dtype=pl.UInt32)).explode()
            if values else pl.Series([], dtype=pl.UInt32),
            "key": pl.Series(list(chain.from_iterable(props)), dtype=pl.String),
            "kind": pl.Series(list(map(_kind, values)), dtype=pl.Int8),
            "text": pl.Series([v if type(v) is str else None for v in values], dtype=pl.String),
            "num": pl.Series([float(v) if type(v) in (int, float) and _exact(v) else None for v in values],
                             dtype=pl.Float64),
        })
        names = cand.select("_i", "event_name")
        pairs = pairs.join(names, on="_i", how="left").join(self._specs, on=["event_name", "key"], how="left")
        pair_ok = (
            pl.col("type").is_not_null()
            & ((pl.col("kind") == _NULL) | (
                pl.col("kind").is_in([_STRING, _INT, _FLOAT, _BOOL])
                & (((pl.col("type") == "string") & (pl.col("kind") == _STRING))
                   | ((pl.col("type") == "integer") & (pl.col("kind") == _INT))
                   | ((pl.col("type") == "number") & pl.col("kind").is_in([_INT, _FLOAT]))
                   | ((pl.col("type") == "boolean") & (pl.col("kind") == _BOOL)))
                & (~pl.col("ranged") | (pl.col("type").is_in(["integer", "number"]) & pl.col("num").is_not_null()
                                       & (pl.col("num") >= pl.col("lo")).fill_null(True)
                                       & (pl.col("num") <= pl.col("hi")).fill_null(True)))
                & (~pl.col("enumerated") | ((pl.col("type") == "string")
                                           & pl.col("text").is_not_null()))
            ))
        ).fill_null(False)
        pairs = pairs.with_columns(_pair_ok=pair_ok)
        # an enumerated value must be one of the plan's (string enums only: others are the reference's)
        enum_hits = pairs.filter(pl.col("enumerated") & pl.col("_pair_ok")).join(
            self._enums, left_on=["event_name", "key", "text"], right_on=["event_name", "key", "value"],
            how="semi").select("_i", "key").with_columns(_hit=pl.lit(True))
        pairs = pairs.join(enum_hits, on=["_i", "key"], how="left").with_columns(
            _pair_ok=pl.col("_pair_ok") & (~pl.col("enumerated").fill_null(False) | pl.col("_hit").fill_null(False)))
        bad = pairs.filter(~pl.col("_pair_ok"))["_i"].unique()
        present = pairs.filter(pl.col("kind") != _NULL).select("_i", "event_name", "key")
        have = self._required.join(names, on="event_name").join(present, on=["_i", "event_name", "key"], how="semi")
        need = self._required.group_by("event_name").len("need")
        got = have.group_by("_i").len("got")
        req_ok = (names.join(need, on="event_name", how="left").join(got, on="_i", how="left")
                  .filter(pl.col("need").fill_null(0) == pl.col("got").fill_null(0))["_i"])
        shape_bad = pl.Series([r for r, ok in zip(rows, shape_ok, strict=True) if not ok], dtype=pl.UInt32)
        cand = cand.filter(pl.col("_i").is_in(req_ok.implode()) & ~pl.col("_i").is_in(bad.implode())
                           & ~pl.col("_i").is_in(shape_bad.implode()))
        return cand, pairs

    def _rows(self, kept: pl.DataFrame, pairs: pl.DataFrame, evs: list[dict[str, Any]]) -> pa.Table:
        masker = self.masker
        # identifiers that are themselves an email, IP or phone number are hashed whole
        idents = {}
        for col in ("event_id", "user_id", "anonymous_id", "session_id", "locale"):
            idents[col] = _hashed_where_pii(kept[col], masker)
        ips = kept["ip"]
        uniq_ips = ips.drop_nulls().unique().to_list()
        ip_hash = ips.replace_strict({v: masker.hash(v) for v in uniq_ips}, default=None, return_dtype=pl.String)
        uas = kept["user_agent"]
        parsed = {v: parse_user_agent(v) for v in uas.drop_nulls().unique().to_list()}
        other = parse_user_agent(None)
        browser = uas.replace_strict({k: v[0] for k, v in parsed.items()}, default=other[0], return_dtype=pl.String)
        device = uas.replace_strict({k: v[1] for k, v in parsed.items()}, default=other[1], return_dtype=pl.String)
        # properties: plan-marked PII and any string value that looks like PII are hashed
        kept_ids = kept["_i"]
        pairs = pairs.filter(pl.col("_i").is_in(kept_ids.implode()) & (pl.col("kind") != _NULL))
        strings = pairs.filter(pl.col("kind") == _STRING)["text"].unique()
        suspects = strings.filter(strings.to_frame("v").select(maybe_pii(pl.col("v")))["v"])
        pii_values = [v for v in suspects.to_list() if looks_like_pii(v)]
        masked = pairs.filter(pl.col("pii") | pl.col("text").is_in(pii_values)).select("_i", "key")
        to_mask: dict[int, list[str]] = {}
        for i, k in masked.iter_rows():
            to_mask.setdefault(i, []).append(k)
        dumps = orjson.dumps
        texts = []
        for i in kept_ids.to_list():
            props = evs[i].get("properties") or {}
            keys = to_mask.get(i)
            if keys:
                props = dict(props)
                for k in keys:
                    props[k] = masker.hash(props[k])
            texts.append(dumps(props))
        n = kept.height
        arrays = {
            "event_id": idents["event_id"].to_arrow(),
            "event_name": kept["event_name"].to_arrow(),
            "event_ts": kept["_ts"].to_arrow().cast(pa.int64()).cast(BRONZE_EVENTS.field("event_ts").type),
            "received_at": kept["_rec"].to_arrow().cast(pa.int64()).cast(BRONZE_EVENTS.field("received_at").type),
            "user_id": idents["user_id"].to_arrow(),
            "anonymous_id": idents["anonymous_id"].to_arrow(),
            "session_id": idents["session_id"].to_arrow(),
            "properties": pa.array(texts, pa.binary()).cast(pa.string()),
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


def _kind(value: Any) -> int:
    return _KINDS.get(type(value), _OTHER)


def _exact(value: int | float) -> bool:
    """A number that float64 holds exactly enough for the plan's range checks (ints up to 2^53)."""
    return type(value) is float or -_EXACT <= value <= _EXACT


def _us(ts: datetime) -> int:
    delta = ts.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _hashed_where_pii(values: pl.Series, masker: PiiMasker) -> pl.Series:
    """``values`` with each one that looks like PII replaced by its keyed hash (judged once per value)."""
    uniq = values.drop_nulls().unique()
    if uniq.len() == 0:
        return values
    suspects = uniq.filter(uniq.to_frame("v").select(maybe_pii(pl.col("v")))["v"]).to_list()
    hashed = {v: masker.hash(v) for v in suspects if looks_like_pii(v)}
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
                "enum": list(p.enum) if string_enum else [],
                "ranged": p.min is not None or p.max is not None,
                "lo": float(p.min) if p.min is not None else None, "hi": float(p.max) if p.max is not None else None,
                "pii": p.pii,
            })
            if p.required:
                required.append({"event_name": name, "key": p.name})
    schema = {"event_name": pl.String, "key": pl.String, "type": pl.String, "enumerated": pl.Boolean,
              "enum": pl.List(pl.String), "ranged": pl.Boolean, "lo": pl.Float64, "hi": pl.Float64, "pii": pl.Boolean}
    return (pl.DataFrame(rows, schema=schema),
            pl.DataFrame(required, schema={"event_name": pl.String, "key": pl.String}))


"""Turn landed lines into bronze rows, quarantine rows or consent drops (pure, no I/O)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from lake.contracts.plan import TrackingPlan
from lake.contracts.validate import EventValidator, parse_timestamp
from lake.contracts.violations import Violation
from lake.landing import parse_partition_key
from lake.pii import PiiMasker, looks_like_pii, safe_prefix
from lake.schemas import BRONZE_EVENTS, BRONZE_QUARANTINE
from lake.settings import current as current_settings
from lake.useragent import parse_user_agent

__all__ = ["ConsentRevocation", "Normalizer", "NormalizedBatch", "event_time_window", "partition_date"]

_BRONZE_COLS = [f.name for f in BRONZE_EVENTS]
_ROW_COLS = ("event_id", "event_name", "event_ts", "received_at", "user_id", "anonymous_id", "session_id",
             "properties", "ip_hash", "browser_family", "device_type", "locale", "consent_marketing",
             "_landing_partition", "_source_file", "_line_number")
_QUAR_COLS = [f.name for f in BRONZE_QUARANTINE]
_DETAIL_CHARS = 2000
_NAME_CHARS = 200  # of an unplanned event_name kept in its quarantine column
_LONG_LINE_PREFIX = 1024  # bytes of a line_too_long line kept (masked) in quarantine


def partition_date(landing_partition: str) -> date:
    """``2026-11-02-05:00`` -> ``date(2026, 11, 2)``."""
    return date.fromisoformat(landing_partition[:10])


def event_time_window(plan: TrackingPlan, landing_partition: str) -> tuple[datetime, datetime]:
    """The event times a landing hour accepts: from ``max_lateness_days`` (and an hour) before it
    to two hours and ``max_clock_skew_seconds`` after its start.

    The contract quarantines an event outside it (``invalid_timestamp``), and the ``bronze_events``
    gate checks the same window — so a line whose two times agree with each other but not with the
    hour it landed in is one quarantined line, not a held hour.
    """
    hour = parse_partition_key(landing_partition)
    return (hour - timedelta(days=plan.max_lateness_days, hours=1),
            hour + timedelta(hours=2, seconds=plan.max_clock_skew_seconds))


@dataclass(frozen=True)
class ConsentRevocation:
    """A ``consent_updated`` event that withdrew analytics consent: a right-to-erasure request.

    Captured whatever else happens to the line (it is usually dropped for consent, or quarantined),
    and persisted by the ingestion pipeline as a pending request (``lake.erasure.requests``); it
    holds the raw ids only until the request is processed.
    """

    user_id: str | None
    anonymous_id: str | None
    requested_at: datetime | None  # the event's timestamp, when it parses
    event_id: str | None
    landing_partition: str


@dataclass
class NormalizedBatch:
    """What one landing partition (or a replay) turned into, before any table was touched."""

    lines_landed: int = 0
    consent_dropped: int = 0
    bronze: pa.Table = field(default_factory=BRONZE_EVENTS.empty_table)
    quarantine: pa.Table = field(default_factory=BRONZE_QUARANTINE.empty_table)
    revocations: list[ConsentRevocation] = field(default_factory=list)
    # Lines normalized one at a time by the per-line reference (Normalizer) rather than column-wise
    # (lake.ingest.columnar): those only it judges (quarantined, consent_updated, unusual forms), or
    # every line of a partition too small for the columns or of GROWTHLAKE_NORMALIZER=per_line.
    python_fallback_lines: int = 0
    # Per landing partition (several in a ranged pass): (non-blank lines read, consent-dropped events).
    by_partition: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def quarantined_by_reason(self) -> dict[str, int]:
        if self.quarantine.num_rows == 0:
            return {}
        counts = self.quarantine.group_by("violation_type").aggregate([("violation_type", "count")])
        return dict(zip(counts["violation_type"].to_pylist(), counts["violation_type_count"].to_pylist(), strict=True))


def partition_counts(lines: Counter[str], consent: Counter[str]) -> dict[str, tuple[int, int]]:
    """(lines, consent-dropped) per landing partition, from two counters."""
    return {key: (lines[key], consent[key]) for key in sorted(set(lines) | set(consent))}


class Normalizer:
    """Validates, pseudonymizes and reshapes the lines of one batch.

    Every valid line becomes a bronze candidate, redeliveries included: which copy of an event
    is kept is decided against the table (:func:`lake.ingest.pipeline.classify_against_bronze`),
    so that a rerun keeps the copy that was published first.
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
        self.plan = plan
        self.validator = validator or EventValidator(plan)
        self.masker = masker
        self.ingested_at = ingested_at or datetime.now(UTC)
        self.max_line_bytes = current_settings().max_line_bytes if max_line_bytes is None else max_line_bytes
        self._consent_key = plan.consent_required
        self._windows: dict[str, tuple[datetime, datetime]] = {}
        self._rows: list[tuple] = []  # one tuple per bronze candidate, in _ROW_COLS order
        self._quar: dict[str, list[Any]] = {c: [] for c in _QUAR_COLS}
        self.lines = 0
        self.consent_dropped = 0
        self.lines_by_partition: Counter[str] = Counter()
        self.consent_by_partition: Counter[str] = Counter()
        self.revocations: list[ConsentRevocation] = []

    # -- entry points -------------------------------------------------------------------------
    def add_line(self, raw: bytes, source_file: str, line_number: int, landing_partition: str,
                 convert: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        """Process one landed line (without its newline). Blank lines are not events: skip them.

        ``convert`` maps a parsed line of another format (a Segment message) to the canonical
        model first (:mod:`lake.ingest.formats`); the line stays the unit either way. A line longer
        than ``max_line_bytes`` is quarantined as ``line_too_long`` before anything reads it (not
        even the blank-line test): only a short prefix, masked, is kept.
        """
        too_long = len(raw) > self.max_line_bytes
        if not too_long and (not raw or raw.isspace()):
            return
        self.lines += 1
        self.lines_by_partition[landing_partition] += 1
        if too_long:
            prefix = safe_prefix(raw[:_LONG_LINE_PREFIX].decode("utf-8", errors="ignore"), _LONG_LINE_PREFIX,
                                 truncated=True)
            self._quarantine_raw(self.masker.mask_text(prefix), [], "line_too_long",
                                 f"line is longer than {self.max_line_bytes:,} bytes (GROWTHLAKE_MAX_LINE_BYTES): not "
                                 "parsed; raw_line keeps a short masked prefix, the landing file the line",
                                 None, None, source_file, line_number, landing_partition)
            return
        try:
            ev = orjson.loads(raw)
        except orjson.JSONDecodeError:
            ev = None
        if type(ev) is not dict:
            text = raw.decode("utf-8", errors="replace")
            self._quarantine_raw(self.masker.mask_text(text), [], "malformed_json",
                                 "line is not a JSON object", None, None, source_file, line_number, landing_partition)
            return
        if convert is not None:
            ev = convert(ev)
        self.add_event(ev, source_file, line_number, landing_partition)

    def add_event(self, ev: dict[str, Any], source_file: str, line_number: int, landing_partition: str,
                  *, already_masked: frozenset[str] = frozenset(), count_line: bool = False) -> str:
        """Process a parsed event. Returns ``bronze`` (a candidate), ``quarantine`` or ``consent``.

        ``already_masked`` lists JSON paths (``context.ip``, ``properties.email``) hashed earlier,
        as recorded for a quarantined line that is being replayed.
        """
        if count_line:
            self.lines += 1
            self.lines_by_partition[landing_partition] += 1
        ctx = ev.get("context")
        if type(ctx) is not dict:
            ctx = {}
        consent = ctx.get("consent")
        if ev.get("event_name") == "consent_updated":
            self._capture_revocation(ev, consent, landing_partition)
        if type(consent) is not dict or consent.get(self._consent_key) is not True:
            # Without analytics consent nothing of the event is kept, not even in quarantine.
            self.consent_dropped += 1
            self.consent_by_partition[landing_partition] += 1
            return "consent"

        violation, ts, received = self.validator.check(ev)
        if violation is None:
            assert ts is not None and received is not None  # check() parsed both: no violation
            window = self._windows.get(landing_partition)
            if window is None:
                window = self._windows[landing_partition] = event_time_window(self.plan, landing_partition)
            if not window[0] <= ts <= window[1]:
                violation = Violation("invalid_timestamp", f"invalid_timestamp: timestamp {ts.isoformat()} is outside "
                                      f"[{window[0].isoformat()}, {window[1].isoformat()}], the event times landing "
                                      f"hour {landing_partition} accepts (received_at {received.isoformat()})")
        name = ev.get("event_name")
        props = ev.get("properties")
        if type(props) is not dict:
            props = {} if props is None else props
        ip = ctx.get("ip")
        if violation is not None:
            masked = self._mask_event(ev, ctx, props, name, already_masked)
            event_id = ev.get("event_id") if type(ev.get("event_id")) is str else None
            self._quarantine_raw(self._masked_line(ev), masked, violation.type, violation.detail, event_id,
                                 name if type(name) is str else None, source_file, line_number, landing_partition)
            return "quarantine"

        # no violation: check() parsed both times and found the event name in the plan
        assert ts is not None and received is not None and isinstance(name, str)
        event_id = self._ident(ev["event_id"])
        pii = self.validator.pii_of(name)
        if already_masked:
            done = frozenset(p[11:] for p in already_masked if p.startswith("properties."))
            self.masker.mask_properties(props, pii, done)
            ip_hash = ip if "context.ip" in already_masked else (None if ip is None else self.masker.hash(ip))
        else:
            if props:
                self.masker.mask_properties(props, pii)
            ip_hash = None if ip is None else self.masker.hash(ip)
        browser, device = parse_user_agent(ctx.get("user_agent"))
        marketing = consent.get("marketing")
        self._rows.append((
            event_id, name, round(ts.timestamp() * 1_000_000), round(received.timestamp() * 1_000_000),
            self._ident(ev.get("user_id")), self._ident(ev.get("anonymous_id")), self._ident(ev.get("session_id")),
            orjson.dumps(props).decode(), ip_hash, browser, device,
            self._ident(ctx.get("locale")), marketing if type(marketing) is bool else None,
            landing_partition, source_file, line_number,
        ))
        return "bronze"

    def finish(self) -> NormalizedBatch:
        return NormalizedBatch(
            lines_landed=self.lines,
            consent_dropped=self.consent_dropped,
            bronze=self._bronze_table(),
            quarantine=pa.Table.from_pydict(self._quar, schema=BRONZE_QUARANTINE),
            revocations=list(self.revocations),
            by_partition=partition_counts(self.lines_by_partition, self.consent_by_partition),
        )

    def _bronze_table(self) -> pa.Table:
        n = len(self._rows)
        if n == 0:
            return BRONZE_EVENTS.empty_table()
        cols = dict(zip(_ROW_COLS, zip(*self._rows, strict=True), strict=True))
        arrays: dict[str, pa.Array] = {}
        for name in _BRONZE_COLS:
            field = BRONZE_EVENTS.field(name)
            if name in ("event_ts", "received_at"):
                arrays[name] = pa.array(cols[name], pa.int64()).cast(field.type)
            elif name == "event_date":
                arrays[name] = pc.cast(arrays["event_ts"], pa.date32())
            elif name == "plan_version":
                arrays[name] = pa.array([self.plan.version] * n, field.type)
            elif name == "_ingested_at":
                arrays[name] = pa.array([self.ingested_at] * n, field.type)
            else:
                arrays[name] = pa.array(cols[name], field.type)
        return pa.Table.from_pydict(arrays, schema=BRONZE_EVENTS)

    # -- helpers ------------------------------------------------------------------------------
    def _capture_revocation(self, ev: dict[str, Any], consent: Any, landing_partition: str) -> None:
        """Record a withdrawal of analytics consent (``properties.analytics`` or the event's own
        ``context.consent.analytics`` is ``false``) as an erasure request for its sender."""
        props = ev.get("properties")
        revoked = (type(props) is dict and props.get("analytics") is False) or (
            type(consent) is dict and consent.get("analytics") is False)
        user_id, anonymous_id = ev.get("user_id"), ev.get("anonymous_id")
        user_id = user_id if type(user_id) is str and user_id.strip() else None
        anonymous_id = anonymous_id if type(anonymous_id) is str and anonymous_id.strip() else None
        if not revoked or (user_id is None and anonymous_id is None):
            return
        requested_at = None
        ts = ev.get("timestamp")
        if type(ts) is str:
            try:
                parsed = datetime.fromisoformat(ts)
                requested_at = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
            except (ValueError, OverflowError):  # not a time, or not one in years 1-9999 UTC
                requested_at = parse_timestamp(ts)
        event_id = ev.get("event_id")
        self.revocations.append(ConsentRevocation(user_id, anonymous_id, requested_at,
                                                  event_id if type(event_id) is str else None, landing_partition))

    def _ident(self, value: Any) -> str | None:
        # An identifier that is itself an email, IP or phone number (some apps use one as user_id,
        # session id or locale) is hashed too; the hash is stable, so joins on it still work.
        if type(value) is not str:
            return None
        return self.masker.hash(value) if looks_like_pii(value) else value

    def _mask_event(self, ev: dict[str, Any], ctx: dict[str, Any], props: Any, name: Any,
                    already: frozenset[str]) -> list[str]:
        """Hash, in place, what bronze would hash (so that a replay of the line gets the same values)."""
        masked = sorted(already)
        if ctx.get("ip") is not None and "context.ip" not in already:
            ctx["ip"] = self.masker.hash(ctx["ip"])
            masked.append("context.ip")
        if type(props) is dict:
            pii = self.validator.pii_of(name) if type(name) is str else frozenset()
            done = frozenset(p[11:] for p in already if p.startswith("properties."))
            # named as raw_line names them: a property name that is itself PII is masked there too
            masked += [f"properties.{self.masker.mask_string(p)}"
                       for p in self.masker.mask_properties(props, pii, done)]
        for holder, key, path in ((ev, "event_id", "event_id"), (ev, "user_id", "user_id"),
                                  (ev, "anonymous_id", "anonymous_id"), (ev, "session_id", "session_id"),
                                  (ctx, "locale", "context.locale")):
            value = holder.get(key)
            if type(value) is str and looks_like_pii(value):
                holder[key] = self.masker.hash(value)
                masked.append(path)
        return sorted(set(masked))

    def _masked_line(self, ev: dict[str, Any]) -> str:
        """The quarantined event as JSON text with every other email, IP and phone number masked.

        Strings and keys are masked one by one (:meth:`PiiMasker.mask_json`), so the text stays JSON
        that a replay can parse; a last scan of the text masks anything that still shows.
        """
        text = orjson.dumps(self.masker.mask_json(ev), option=orjson.OPT_SORT_KEYS).decode()
        return self.masker.mask_text(text)

    def _quarantine_raw(self, text: str, masked: list[str], vtype: str, detail: str, event_id: str | None,
                        event_name: str | None, source_file: str, line_number: int, landing_partition: str) -> None:
        # raw_line is masked by the caller; the detail quotes values of the line, so it is masked here.
        q = self._quar
        q["raw_line"].append(text)
        q["masked_fields"].append(masked)
        q["violation_type"].append(vtype)
        q["detail"].append(safe_prefix(self.masker.mask_text(detail), _DETAIL_CHARS))
        q["event_id"].append(event_id)
        q["event_name"].append(None if event_name is None
                               else self.masker.mask_text(safe_prefix(event_name, _NAME_CHARS)))
        q["source_file"].append(source_file)
        q["line_number"].append(line_number)
        q["landing_partition"].append(landing_partition)
        q["landing_date"].append(partition_date(landing_partition))
        q["plan_version"].append(self.plan.version)
        q["ingested_at"].append(self.ingested_at)
        q["resolution"].append(None)
        q["resolved_at"].append(None)

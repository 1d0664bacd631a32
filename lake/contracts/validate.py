"""Validate one parsed event against the tracking plan: pure, fast, typed violations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from lake.contracts.plan import TrackingPlan
from lake.contracts.violations import VIOLATION_TYPES, Violation
from lake.pii import safe_prefix

__all__ = ["EventValidator", "brief", "parse_timestamp"]

_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) is int or type(v) is float,
    "boolean": lambda v: type(v) is bool,
}
_RANK = {name: i for i, name in enumerate(VIOLATION_TYPES)}
_NO_PII: frozenset[str] = frozenset()
_ID_FIELDS = ("user_id", "anonymous_id", "session_id")
_CONTEXT_STRINGS = ("ip", "user_agent", "locale")  # what ingestion reads from context, besides consent
_BRIEF_CHARS = 120


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an RFC 3339 timestamp with an explicit offset; return it in UTC, or None.

    None too when the time cannot be expressed in UTC (``0001-01-01T00:30:00+01:00`` is in year 0).
    """
    if type(value) is not str or len(value) < 20:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    tz = dt.tzinfo
    if tz is UTC:  # the common "…Z" case: already UTC
        return dt
    if tz is None:
        return None
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        return None


def brief(value: Any) -> str:
    """A short, safe rendering of any JSON value for a violation's detail.

    Strings are cut at a token boundary (:func:`lake.pii.safe_prefix`, so no address is left half
    and unrecognizable to the masking of the detail), and characters repr would escape (``\x01``,
    ``\u2028``) are shown as spaces — an escape's hex digits glued to an IP would hide it from that
    masking. Containers are named by type, never rendered (they may be huge or nested a thousand
    levels deep).
    """
    if type(value) is str:
        short = safe_prefix(value, _BRIEF_CHARS)
        shown = short if short.isprintable() else "".join(c if c.isprintable() else " " for c in short)
        return repr(shown) if short == value else repr(shown + "…")
    if value is None or type(value) in (bool, int, float):
        return repr(value)
    return f"<{type(value).__name__}>"


class EventValidator:
    """Checks the envelope and properties of parsed events against one tracking plan.

    Compiled once per plan: per-event lookups of required names, type checks, enums and ranges.
    """

    def __init__(self, plan: TrackingPlan) -> None:
        self.plan = plan
        self._skew = timedelta(seconds=plan.max_clock_skew_seconds)
        self._lateness = timedelta(days=plan.max_lateness_days)
        self._events: dict[str, tuple[tuple[str, ...], dict[str, tuple]]] = {}
        self._pii = {name: spec.pii for name, spec in plan.events.items()}
        for name, spec in plan.events.items():
            props = {
                p.name: (_TYPE_CHECKS[p.type], p.type, frozenset(p.enum) if p.enum is not None else None, p.min, p.max)
                for p in spec.properties.values()
            }
            self._events[name] = (spec.required, props)

    def pii_of(self, event_name: str) -> frozenset[str]:
        return self._pii.get(event_name, _NO_PII)

    def check(self, ev: dict[str, Any]) -> tuple[Violation | None, datetime | None, datetime | None]:
        """Validate a parsed event.

        Returns ``(violation, event_ts, received_at)``. ``violation`` is None for a valid event;
        otherwise it is the most severe problem, its ``detail`` listing every problem found.
        """
        problems: list[Violation] = []
        event_id = ev.get("event_id")
        if type(event_id) is not str or not event_id:
            problems.append(Violation("missing_event_id", "event_id is missing, null or not a non-empty string"))

        ts = parse_timestamp(ev.get("timestamp"))
        received = parse_timestamp(ev.get("received_at"))
        if ts is None:
            problems.append(Violation("invalid_timestamp", f"timestamp {brief(ev.get('timestamp'))} is not RFC 3339 "
                                      "with an offset (in years 1-9999 UTC)"))
        if received is None:
            problems.append(Violation("invalid_timestamp", f"received_at {brief(ev.get('received_at'))} is not RFC "
                                      "3339 with an offset (in years 1-9999 UTC)"))
        if ts is not None and received is not None:
            ahead = ts - received  # a difference of two datetimes never overflows; a sum may
            if ahead > self._skew:
                problems.append(Violation("invalid_timestamp", f"timestamp {ts.isoformat()} is after received_at "
                                          f"{received.isoformat()} by more than {self._skew}"))
            elif -ahead > self._lateness:
                problems.append(Violation("invalid_timestamp", f"timestamp {ts.isoformat()} is more than "
                                          f"{self.plan.max_lateness_days} days before received_at"))

        for key in _ID_FIELDS:
            value = ev.get(key)
            if value is not None and type(value) is not str:
                problems.append(Violation("datatype_mismatch",
                                          f"{key} must be a string or null, got {type(value).__name__}"))
        ctx = ev.get("context")
        if type(ctx) is dict:
            for key in _CONTEXT_STRINGS:
                value = ctx.get(key)
                if value is not None and type(value) is not str:
                    problems.append(Violation("invalid_field",
                                              f"context.{key} must be a string or null, got {type(value).__name__}"))

        name = ev.get("event_name")
        compiled = self._events.get(name) if type(name) is str else None
        if compiled is None:
            problems.append(Violation("unplanned_event",
                                      f"event_name {brief(name)} is not in tracking plan {self.plan.version}"))
        else:
            props = ev.get("properties")
            if props is None:
                props = {}
            if type(props) is not dict:
                problems.append(Violation("datatype_mismatch",
                                          f"properties must be an object, got {type(props).__name__}"))
            else:
                assert isinstance(name, str)  # compiled is only found for a str name
                self._check_properties(name, props, compiled, problems)

        if not problems:
            return None, ts, received
        problems.sort(key=lambda v: _RANK[v.type])
        detail = "; ".join(f"{p.type}: {p.detail}" for p in problems)
        return Violation(problems[0].type, detail), ts, received

    @staticmethod
    def _check_properties(name: str, props: dict[str, Any], compiled: tuple, problems: list[Violation]) -> None:
        required, specs = compiled
        for req in required:
            if props.get(req) is None:
                problems.append(Violation("required_missing", f"{name}.{req} is required"))
        for key, value in props.items():
            spec = specs.get(key)
            if spec is None:
                where = f"{name}.{key}" if key.isidentifier() else f"{name}[{brief(key)}]"  # quoted: no PII glued on
                problems.append(Violation("unexpected_property", f"{where} is not in the plan"))
                continue
            if value is None:
                continue
            type_ok, type_name, enum, lo, hi = spec
            if not type_ok(value):
                problems.append(Violation("datatype_mismatch",
                                          f"{name}.{key} must be {type_name}, got {type(value).__name__}"))
            elif enum is not None and value not in enum:
                problems.append(Violation("disallowed_value",
                                          f"{name}.{key}={brief(value)} is not one of {sorted(map(str, enum))}"))
            elif (lo is not None and value < lo) or (hi is not None and value > hi):
                problems.append(Violation("disallowed_value", f"{name}.{key}={brief(value)} is outside [{lo}, {hi}]"))

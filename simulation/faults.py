"""Collector faults: turn one clean event into the line(s) a faulty collector would deliver.

At most one fault hits a line. ``duplicate`` adds a second copy of a clean line and ``late``
delays a clean line; every other kind makes the event's only line a contract violation of
exactly that kind (so a validator files it under the same name, see lake/contracts/violations.py).
Delays never push a line past the end of the window: when there is no room for the drawn delay
the fault falls back to a same-hour duplicate, and the manifest counts what was applied.
"""

from __future__ import annotations

import random
from itertools import accumulate
from typing import Any

import orjson

from .catalog import BAD_TIMESTAMPS, UNEXPECTED_PROPERTIES, UNPLANNED_EVENTS
from .config import FAULT_KINDS, SimulatorConfig
from .formats import MS_DAY, MS_HOUR, MS_MINUTE, TimestampFormatter
from .plan import PlanView

__all__ = ["FaultInjector", "Line"]

Line = tuple[int, bytes, "str | None"]  # (received_at ms, bytes without newline, fault kind or None)

_dumps = orjson.dumps
_NUMBER_WORDS = ("one", "two", "three", "four", "five", "many")


class FaultInjector:
    """Draws fault kinds with the configured weights and applies them to event dicts."""

    def __init__(self, plan: PlanView, cfg: SimulatorConfig, fmt: TimestampFormatter, *, end_ms: int) -> None:
        self.plan = plan
        self.fmt = fmt
        self.last_ms = end_ms - 1
        self.kinds = [k for k in FAULT_KINDS if cfg.fault_weights.get(k, 0.0) > 0]
        self.cum = list(accumulate(cfg.fault_weights[k] for k in self.kinds))
        self.unplanned = tuple(n for n in UNPLANNED_EVENTS if n not in plan.event_names) or ("unplanned_event_x",)

    def choose(self, r: random.Random) -> str:
        return r.choices(self.kinds, cum_weights=self.cum)[0]

    def apply(self, kind: str, ev: dict[str, Any], ts: int, rec: int, r: random.Random) -> tuple[str, list[Line]]:
        """Apply ``kind`` to ``ev`` (mutated) and return ``(applied kind, lines)``."""
        if kind == "duplicate":
            return kind, self._duplicate(ev, rec, r)
        if kind == "late":
            lo = 2 * MS_HOUR
            room = self.last_ms - ts
            if room < lo + MS_MINUTE:
                return "duplicate", self._duplicate(ev, rec, r, near=True)
            late = ts + lo + r.randrange(min(3 * MS_DAY, room) - lo)
            ev["received_at"] = self.fmt(late)
            return kind, [(late, _dumps(ev), kind)]
        if kind == "malformed_json":
            return kind, [(rec, self._corrupt(_dumps(ev), r), kind)]
        name = ev["event_name"]
        props = dict(ev["properties"])
        ev["properties"] = props
        if kind == "unplanned_event":
            ev["event_name"] = r.choice(self.unplanned)
        elif kind == "required_missing" and self.plan.required.get(name):
            props.pop(r.choice(self.plan.required[name]), None)
        elif kind == "datatype_mismatch" and self._mistype(name, props, r):
            pass
        elif kind == "invalid_timestamp":
            if r.random() < 0.5:
                ev["timestamp"] = r.choice(BAD_TIMESTAMPS)
            else:  # more than a day after the collector received it
                ev["timestamp"] = self.fmt(rec + MS_DAY + MS_MINUTE + r.randrange(20 * MS_DAY))
        elif kind == "missing_event_id":
            if r.random() < 0.5:
                del ev["event_id"]
            else:
                ev["event_id"] = None
        else:  # unexpected_property, also the fallback when a kind has nothing to act on
            kind = "unexpected_property"
            known = self.plan.types.get(name, {})
            key, value = r.choice([kv for kv in UNEXPECTED_PROPERTIES if kv[0] not in known])
            props[key] = value
        return kind, [(rec, _dumps(ev), kind)]

    def _duplicate(self, ev: dict[str, Any], rec: int, r: random.Random, *, near: bool | None = None) -> list[Line]:
        """The clean line, then a copy: identical, up to an hour later, or 1-3 days later."""
        line = _dumps(ev)
        if near is None:
            near = r.random() < 0.5
        if not near and self.last_ms - rec >= MS_DAY + MS_MINUTE:
            again = rec + MS_DAY + r.randrange(min(2 * MS_DAY, self.last_ms - rec - MS_DAY))
        elif r.random() < 0.5:
            return [(rec, line, None), (rec, line, "duplicate")]  # the very same bytes re-sent
        else:
            again = min(rec + 1_000 + r.randrange(MS_HOUR - 2_000), self.last_ms)  # same or next hour
        ev["received_at"] = self.fmt(again)
        return [(rec, line, None), (again, _dumps(ev), "duplicate")]

    @staticmethod
    def _corrupt(line: bytes, r: random.Random) -> bytes:
        """Not JSON any more, yet still carrying whatever raw text (IPs, emails) it had."""
        u = r.random()
        if u < 0.6:  # cut mid-write: a strict prefix of an object is never valid JSON
            return line[: r.randrange(len(line) // 3, len(line) - 1)]
        if u < 0.8:  # a key without its colon
            return line.replace(b'":', b'"', 1)
        return line[:-1] + b",}"  # trailing comma

    def _mistype(self, name: str, props: dict[str, Any], r: random.Random) -> bool:
        types = self.plan.types.get(name, {})
        candidates = [k for k in props if k in types]
        if not candidates:
            return False
        key = r.choice(candidates)
        value, kind = props[key], types[key]
        if kind == "integer":
            props[key] = r.choice(_NUMBER_WORDS) if r.random() < 0.5 else str(value)
        elif kind == "number":
            props[key] = f"{value:.2f}"
        elif kind == "boolean":
            props[key] = r.choice(("yes", "true", "1"))
        else:
            props[key] = r.choice((12345, True, 3.5))
        return True

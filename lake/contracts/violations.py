"""Typed contract violations: why a landed line was quarantined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["VIOLATION_TYPES", "ViolationType", "Violation"]

ViolationType = Literal[
    "line_too_long",
    "malformed_json",
    "missing_event_id",
    "invalid_timestamp",
    "invalid_field",
    "unplanned_event",
    "required_missing",
    "datatype_mismatch",
    "disallowed_value",
    "unexpected_property",
]

# Most severe first: a line with several problems is filed under the first that applies.
VIOLATION_TYPES: tuple[str, ...] = (
    "line_too_long",  # longer than GROWTHLAKE_MAX_LINE_BYTES: not parsed at all
    "malformed_json",
    "missing_event_id",
    "invalid_timestamp",
    "invalid_field",  # an envelope / context field of the wrong JSON type (e.g. context.user_agent an array)
    "unplanned_event",
    "required_missing",
    "datatype_mismatch",
    "disallowed_value",
    "unexpected_property",
)


@dataclass(frozen=True)
class Violation:
    type: ViolationType
    detail: str

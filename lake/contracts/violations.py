"""Typed contract violations: why a landed line was quarantined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["VIOLATION_TYPES", "ViolationType", "Violation"]

ViolationType = Literal[
    "malformed_json",
    "missing_event_id",
    "invalid_timestamp",
    "unplanned_event",
    "required_missing",
    "datatype_mismatch",
    "disallowed_value",
    "unexpected_property",
]

# Most severe first: a line with several problems is filed under the first that applies.
VIOLATION_TYPES: tuple[str, ...] = (
    "malformed_json",
    "missing_event_id",
    "invalid_timestamp",
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

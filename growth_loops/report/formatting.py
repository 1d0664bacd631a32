"""How the report writes a value for a person: no ``None``, ``nan`` or ``inf`` ever reaches the page.

Plain text only (the answers use it as well as the HTML); escaping for HTML is the renderer's job.
Meant for this package: import the module (``from growth_loops.report import formatting as fmt``).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any, TypeGuard

from growth_loops.features.rollups import REPORTING_CURRENCY

__all__ = ["DASH", "finite", "interval", "money", "num", "pct", "plural", "text", "with_interval"]

#: What the report prints for a value it does not have.
DASH = "\u2014"


def finite(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is a finite number (``bool`` is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def text(value: Any) -> str:
    """A value as a person reads it: no ``None``, ``nan`` or ``inf`` ever reaches the page."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3g}" if math.isfinite(value) else DASH
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC") if value.tzinfo else value.isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def num(value: Any, digits: int = 2) -> str:
    """``1,234.57`` (``digits`` decimals), or a dash."""
    return f"{value:,.{digits}f}" if finite(value) else DASH


def pct(value: Any, digits: int = 1, *, signed: bool = False) -> str:
    """A share as a percentage (``0.123`` → ``12.3%``, ``+12.3%`` when ``signed``), or a dash."""
    if not finite(value):
        return DASH
    return f"{value * 100:+.{digits}f}%" if signed else f"{value * 100:.{digits}f}%"


def money(value: Any) -> str:
    """An amount in the reporting currency, or a dash."""
    return f"{value:,.2f} {REPORTING_CURRENCY}" if finite(value) else DASH


def interval(low: Any, high: Any, formatter: Callable[[Any], str] = num) -> str:
    """``[low, high]``, or a dash when either end is missing."""
    return f"[{formatter(low)}, {formatter(high)}]" if finite(low) and finite(high) else DASH


def with_interval(record: dict[str, Any], prefix: str, formatter: Callable[[Any], str]) -> str:
    """``estimate [low, high]`` of a results record (``abs`` or ``rel``), or a dash when not computed."""
    estimate = record.get(f"{prefix}_estimate")
    if not finite(estimate):
        return DASH
    low, high = record.get(f"{prefix}_ci_low"), record.get(f"{prefix}_ci_high")
    return f"{formatter(estimate)} {interval(low, high, formatter)}"


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 day``, ``2 days`` (``many`` when the plural is not ``one + "s"``)."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"

"""The result of validating a batch against a suite, independent of Great Expectations."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from typing import Any

_MAX_EXAMPLE_CHARS = 120


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation that did not hold.

    Attributes:
        expectation: GX expectation type, e.g. ``expect_column_values_to_not_be_null``.
        column: The column it checks, or ``None`` for table-level expectations.
        kwargs: Its kwargs with runtime parameters filled in (JSON-safe).
        observed: JSON-safe summary of what was found: ``unexpected_count``,
            ``unexpected_percent``, ``partial_unexpected_list`` (at most 5 values; withheld
            for sensitive expectations), ``observed_value``, and ``exception`` (the error
            message if the expectation could not run, e.g. a missing column, else ``None``).
            Sensitive expectations (``meta.sensitive``) add ``examples_withheld: True``.
        why: The suite's one-sentence reason for the expectation (``meta.why``).
    """

    expectation: str
    column: str | None
    kwargs: dict
    observed: dict
    why: str = ""

    def describe(self) -> str:
        """One human line saying what was wrong."""
        return _describe(self)


@dataclass(frozen=True)
class ValidationOutcome:
    """The verdict of one ``validate`` call.

    Attributes:
        suite: Suite name.
        success: True when every expectation held.
        evaluated: Number of expectations evaluated.
        succeeded: Number that held.
        failed: The ones that did not, in suite-file order.
        row_count: Rows in the validated batch.
        tolerated: Expectations that held only thanks to their ``mostly`` tolerance: some rows
            were unexpected. On a batch of several partitions (landing hours) the tolerance is
            spread over all of them, so one partition may be over it on its own rows.
    """

    suite: str
    success: bool
    evaluated: int
    succeeded: int
    failed: tuple[FailedExpectation, ...] = field(default_factory=tuple)
    row_count: int = 0
    tolerated: tuple[FailedExpectation, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        """Human-readable verdict: a headline, then one line per failed expectation."""
        head = (
            f"{self.suite}: {'passed' if self.success else 'FAILED'} — "
            f"{self.succeeded}/{self.evaluated} expectations held on {self.row_count} rows"
        )
        return "\n".join([head, *(f"  - {f.describe()}" for f in self.failed)])

    def to_metadata(self) -> dict:
        """JSON-safe dict for Dagster check metadata or a results table row."""
        return {
            "suite": self.suite,
            "success": self.success,
            "evaluated": self.evaluated,
            "succeeded": self.succeeded,
            "row_count": self.row_count,
            "failed": [json_safe(asdict(f)) for f in self.failed],
            "summary": self.summary(),
        }


def json_safe(value: Any) -> Any:
    """Turn GX / numpy / pandas values into plain JSON types (NaN and NA become ``None``)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else (None if math.isnan(value) else str(value))
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return [json_safe(v) for v in sorted(value, key=repr)]
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date, dt.time)):  # includes pandas.Timestamp
        try:
            return value.isoformat()
        except ValueError:  # NaT
            return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return json_safe(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, bytes):
        return value.hex()
    try:
        if value != value:  # pandas.NA / NaT raise or are unequal to themselves
            return None
    except TypeError:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def example(value: Any) -> Any:
    """A JSON-safe example value, shortened so a long raw line cannot flood metadata."""
    value = json_safe(value)
    if isinstance(value, str) and len(value) > _MAX_EXAMPLE_CHARS:
        return value[: _MAX_EXAMPLE_CHARS - 1] + "…"
    return value


def _pct(observed: dict) -> str:
    pct = observed.get("unexpected_percent")
    return f" ({pct:.2f}%)" if isinstance(pct, (int, float)) else ""


def _values(n: Any, noun: str = "value") -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _describe(f: FailedExpectation) -> str:
    o, k = f.observed, f.kwargs
    where = f"{f.column}: " if f.column else ""
    why = f" — {f.why}" if f.why else ""
    if o.get("exception"):
        return f"{where}{f.expectation} could not run: {o['exception']}{why}"
    n = o.get("unexpected_count")
    examples = o.get("partial_unexpected_list")
    eg = f"; e.g. {examples}" if examples else ""
    if o.get("examples_withheld"):
        eg = "; examples withheld (sensitive values)"
    mostly = k.get("mostly")
    tolerance = (
        f"; at most {100 * (1 - mostly):.4g}% allowed (mostly={mostly})"
        if isinstance(mostly, (int, float)) and mostly < 1
        else ""
    )
    t = f.expectation
    if t == "expect_column_values_to_not_be_null":
        what = f"{_values(n, 'row')}{_pct(o)} {'is' if n == 1 else 'are'} null{tolerance}"
        eg = ""
    elif t == "expect_column_values_to_be_unique":
        what = f"{_values(n, 'row')}{_pct(o)} share a duplicated value{tolerance}{eg}"
    elif t == "expect_column_values_to_be_in_set":
        allowed = k.get("value_set") or []
        shown = allowed if len(allowed) <= 8 else f"{len(allowed)} allowed values"
        what = f"{_values(n)}{_pct(o)} not in {shown}{tolerance}{eg}"
    elif t == "expect_column_values_to_not_be_in_set":
        what = f"{_values(n)}{_pct(o)} in the forbidden set {k.get('value_set')}{tolerance}{eg}"
    elif t == "expect_column_values_to_be_between":
        lo, hi = k.get("min_value"), k.get("max_value")
        if lo is not None and hi is not None:
            bounds = f"outside [{lo}, {hi}]"
        else:
            bounds = f"below the minimum {lo}" if lo is not None else f"above the maximum {hi}"
        what = f"{_values(n)}{_pct(o)} {bounds}{tolerance}{eg}"
    elif t == "expect_column_values_to_match_regex":
        what = f"{_values(n)}{_pct(o)} not matching /{k.get('regex')}/{tolerance}{eg}"
    elif t == "expect_column_values_to_not_match_regex":
        what = f"{_values(n)}{_pct(o)} matching /{k.get('regex')}/{tolerance}{eg}"
    elif n is not None:
        what = f"{t}: {_values(n, 'unexpected value')}{_pct(o)}{tolerance}{eg}"
    else:
        what = f"{t}: observed {o.get('observed_value')!r}, expected {k}"
    return f"{where}{what}{why}"

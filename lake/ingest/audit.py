"""The gate of a batch of landing hours: validate once, hold only the hours whose rows fail.

A range of hours is audited as one batch (one validation per suite, whatever the number of
hours). When that validation fails — or when an expectation held only thanks to its ``mostly``
tolerance, which a batch of many hours spreads over all of them — the hours that fail on their own
rows are found: Great Expectations names every unexpected row's hour (``unexpected_index_column_names``
on the hour column, :func:`expectations.unexpected_partitions`), and only those suspect hours are
validated again, each alone, with its own parameters. An hour is held when it fails alone, with
that outcome as its reason; the others are cleared. (An auditor other than Great Expectations
names no rows: then every hour is a suspect.) A failure that no hour explains on its own holds
every hour of the batch.

The caller publishes the cleared hours only after validating them again without the held ones:
removing an hour changes what the others hold (a redelivery of a held hour's event becomes new)
and how a ``mostly`` tolerance falls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Auditor", "GateOutcome", "HoursAudit", "audit_hours", "gate_record", "gx_auditor", "rows_of_hours"]


class GateOutcome(Protocol):
    @property
    def success(self) -> bool: ...

    def summary(self) -> str: ...
    def to_metadata(self) -> dict: ...


Auditor = Callable[[str, pa.Table, dict[str, Any]], GateOutcome]


def gx_auditor(suite: str, batch: pa.Table, parameters: dict[str, Any]) -> GateOutcome:
    """Validate a batch with its Great Expectations suite (GX is imported lazily)."""
    from expectations import validate

    return validate(batch, suite, parameters=parameters)


def gate_record(outcome: GateOutcome) -> dict[str, Any]:
    """The form results and ledgers keep a gate's verdict in: ``{success, summary, metadata}``."""
    return {"success": outcome.success, "summary": outcome.summary(), "metadata": outcome.to_metadata()}


@dataclass
class HoursAudit:
    """One suite's verdict on a batch of hours.

    Attributes:
        outcome: the validation of the whole batch.
        failing: hours that fail the suite on their own rows, with that outcome (to hold them).
        alone: every hour validated on its own (the failing ones and the cleared suspects).
        validations: how many validations it took (1 when the batch passed outright).
    """

    outcome: GateOutcome
    failing: dict[str, GateOutcome] = field(default_factory=dict)
    alone: dict[str, GateOutcome] = field(default_factory=dict)
    validations: int = 1

    @property
    def settled(self) -> bool:
        """The batch may be published as it is: it passed, and no hour fails on its own."""
        return self.outcome.success and not self.failing


def rows_of_hours(table: pa.Table, column: str, hours: list[str]) -> pa.Table:
    """The rows of ``table`` whose ``column`` is one of ``hours``."""
    return table.filter(pc.is_in(table[column], value_set=pa.array(hours, pa.string())))


def audit_hours(auditor: Auditor, suite: str, view: pa.Table, *, column: str,
                parameters_for: Callable[[list[str]], dict[str, Any]]) -> HoursAudit:
    """Validate a batch of several hours once; on failure, find the hours that fail on their own.

    Args:
        auditor: the gate (Great Expectations by default).
        suite: the suite to validate.
        view: the rows, each naming its hour in ``column``.
        column: the hour column (``_landing_partition``, ``landing_partition``).
        parameters_for: the suite's parameters for a list of hours (e.g. the event-time window
            they accept together).

    Returns:
        The verdict; ``failing`` is empty when the whole batch passed with nothing tolerated.
    """
    hours = sorted(pc.unique(view[column]).to_pylist())
    whole = auditor(suite, view, parameters_for(hours))
    tolerated = bool(getattr(whole, "tolerated", ()))
    if len(hours) <= 1 or (whole.success and not tolerated):
        return HoursAudit(whole, {} if whole.success else {h: whole for h in hours})
    suspects, validations = _suspects(auditor, suite, view, column, parameters_for(hours)), 2
    if suspects is None:
        suspects, validations = hours, 1
    alone = {h: auditor(suite, rows_of_hours(view, column, [h]), parameters_for([h])) for h in suspects}
    failing: dict[str, GateOutcome] = {h: o for h, o in alone.items() if not o.success}
    if not whole.success and not failing:
        failing = {h: whole for h in hours}  # a failure no hour explains on its own: hold them all
    return HoursAudit(whole, failing, alone, validations + len(alone))


def _suspects(auditor: Auditor, suite: str, view: pa.Table, column: str,
              parameters: dict[str, Any]) -> list[str] | None:
    """The hours holding unexpected rows, as Great Expectations reports them (None: the auditor
    cannot say, or no row was named — e.g. a missing column — so every hour is a suspect)."""
    if auditor is not gx_auditor:
        return None
    from expectations import unexpected_partitions

    found = unexpected_partitions(view, suite, partition_column=column, parameters=parameters)
    return sorted(found) or None

"""The decision audit log: append-only, one row per decision, never updated or deleted.

Every decision a loop takes — an action for a person, a rollback, an approval — records what it
decided from (feature snapshot), with which policy version and propensity, what the guardrails
said, whether it was approved, who acted and when. ``decision_id`` is deterministic, so recording
the same day's decisions again inserts nothing (Delta MERGE, insert-if-absent).
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import polars as pl
import pyarrow as pa

from growth_loops.loops.errors import LoopError
from lake import delta_io
from lake.locks import table_lock
from lake.paths import LakePaths

__all__ = ["AUDIT_LOG", "AuditRecord", "decision_id", "read_audit", "record"]

_TS = pa.timestamp("us", tz="UTC")
_LOCK = "decisions_audit_log"

AUDIT_LOG = pa.schema(
    [
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("decision_day", pa.date32(), nullable=False),  # partition
        pa.field("loop", pa.string(), nullable=False),
        # action | rollback | approval | promotion | skipped | stop | resume | cap
        pa.field("kind", pa.string(), nullable=False),
        pa.field("policy_version", pa.string(), nullable=False),
        pa.field("person_id", pa.string()),  # null for loop-level records (rollback, approval)
        pa.field("action", pa.string()),  # the variant / message chosen
        pa.field("propensity", pa.float64()),  # probability the policy had of choosing it (randomized policies)
        pa.field("feature_snapshot", pa.string(), nullable=False),  # e.g. user_features@2026-11-27#v41
        pa.field("guardrail_verdict", pa.string(), nullable=False),  # pass | rollback | insufficient_evidence | n/a
        pa.field("approval_state", pa.string(), nullable=False),  # approved | pending | rejected | auto
        pa.field("actor", pa.string(), nullable=False),  # loop:<name> or a person
        pa.field("evidence", pa.string(), nullable=False),  # JSON: estimates, thresholds, reasons
        pa.field("decided_at", _TS, nullable=False),
    ]
)


def decision_id(loop: str, day: datetime.date, kind: str, subject: str) -> str:
    """Deterministic id: the same loop, day, kind and subject (person or version) is one decision."""
    return hashlib.sha256(f"{loop}|{day.isoformat()}|{kind}|{subject}".encode()).hexdigest()[:32]


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One audit row (see ``AUDIT_LOG`` for the meaning of each field)."""

    decision_id: str
    decision_day: datetime.date
    loop: str
    kind: str
    policy_version: str
    feature_snapshot: str
    guardrail_verdict: str
    approval_state: str
    actor: str
    decided_at: datetime.datetime
    person_id: str | None = None
    action: str | None = None
    propensity: float | None = None
    evidence: str = "{}"

    def __post_init__(self) -> None:
        if self.decided_at.tzinfo is None:
            raise LoopError("audit record", "decided_at is naive", "Pass a UTC-aware timestamp.")
        if self.propensity is not None and not 0 < self.propensity <= 1:
            raise LoopError("audit record", f"propensity {self.propensity!r} is not in (0, 1]",
                            "Log the probability the policy had of taking the action.")


def record(paths: LakePaths, records: Sequence[AuditRecord] | Iterable[AuditRecord]) -> int:
    """Append the records whose ``decision_id`` is not logged yet; return how many were added."""
    rows = [asdict(r) for r in records]
    if not rows:
        return 0
    data = pa.Table.from_pylist(rows, schema=AUDIT_LOG)
    days = sorted({r["decision_day"].isoformat() for r in rows})
    with table_lock(paths, _LOCK):
        return delta_io.insert_missing(paths.audit_log, data, on=("decision_day", "decision_id"),
                                       partition_by=["decision_day"], operation="audit",
                                       metadata={"days": days, "rows": data.num_rows})


def read_audit(paths: LakePaths, *, loop: str | None = None, kind: str | None = None) -> pl.DataFrame:
    """The audit log (optionally one loop's or one kind's records), oldest first."""
    frame = pl.from_arrow(delta_io.read(paths.audit_log, AUDIT_LOG))
    assert isinstance(frame, pl.DataFrame)
    if loop is not None:
        frame = frame.filter(pl.col("loop") == loop)
    if kind is not None:
        frame = frame.filter(pl.col("kind") == kind)
    return frame.sort("decided_at", "decision_id")

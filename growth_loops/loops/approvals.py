"""Human oversight: a policy version acts only once approved.

An append-only Delta table of approval events (requested, approved, rejected); the state of a
(loop, version) is its latest event. ``requested`` comes from the loop when it proposes a new
version; ``approved`` / ``rejected`` from a person (``growthlake approvals approve|reject``) or, for
loops with ``ApprovalPolicy(mode="auto")``, from the loop itself after ``stable_days`` of passing
guardrails (recorded with actor ``auto:<loop>``). Every event is also an audit-log record.
"""

from __future__ import annotations

import datetime
import json
from typing import Literal

import polars as pl
import pyarrow as pa

from growth_loops.loops import audit
from growth_loops.loops.errors import LoopError
from lake import delta_io
from lake.locks import table_lock
from lake.paths import LakePaths

__all__ = ["APPROVALS", "ApprovalState", "approve", "list_approvals", "reject", "request", "state"]

ApprovalState = Literal["pending", "approved", "rejected"]
_TS = pa.timestamp("us", tz="UTC")
_LOCK = "decisions_approvals"

APPROVALS = pa.schema(
    [
        pa.field("loop", pa.string(), nullable=False),
        pa.field("version", pa.string(), nullable=False),
        pa.field("event", pa.string(), nullable=False),  # requested | approved | rejected
        pa.field("actor", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("evidence", pa.string(), nullable=False),  # JSON the request was made with
        pa.field("at", _TS, nullable=False),
    ]
)
_STATE_OF_EVENT = {"requested": "pending", "approved": "approved", "rejected": "rejected"}


def _events(paths: LakePaths) -> pl.DataFrame:
    frame = pl.from_arrow(delta_io.read(paths.approvals, APPROVALS))
    assert isinstance(frame, pl.DataFrame)
    # A verdict given in the same microsecond as its request still comes after it.
    rank = pl.col("event").replace_strict({"requested": 0, "approved": 1, "rejected": 1}, return_dtype=pl.Int8)
    return frame.sort(pl.col("at"), rank)


def state(paths: LakePaths, loop: str, version: str) -> ApprovalState | None:
    """The version's approval state, or None if it was never requested."""
    mine = _events(paths).filter((pl.col("loop") == loop) & (pl.col("version") == version))
    return None if mine.is_empty() else _STATE_OF_EVENT[mine["event"][-1]]  # type: ignore[return-value]


def list_approvals(paths: LakePaths, *, loop: str | None = None, only: ApprovalState | None = None) -> pl.DataFrame:
    """One row per (loop, version): its state, who last acted, when, why, and when it was requested."""
    events = _events(paths)
    if loop is not None:
        events = events.filter(pl.col("loop") == loop)
    if events.is_empty():
        return pl.DataFrame(schema={"loop": pl.String, "version": pl.String, "state": pl.String, "actor": pl.String,
                                    "reason": pl.String, "at": pl.Datetime("us", "UTC"),
                                    "requested_at": pl.Datetime("us", "UTC"), "evidence": pl.String})
    summary = (
        events.group_by("loop", "version", maintain_order=True)
        .agg(pl.col("event").last(), pl.col("actor").last(), pl.col("reason").last(), pl.col("at").last(),
             pl.col("at").filter(pl.col("event") == "requested").first().alias("requested_at"),
             pl.col("evidence").filter(pl.col("event") == "requested").first())
        .with_columns(pl.col("event").replace_strict(_STATE_OF_EVENT).alias("state"))
        .select("loop", "version", "state", "actor", "reason", "at", "requested_at", "evidence")
        .sort("requested_at", "loop", "version")
    )
    return summary if only is None else summary.filter(pl.col("state") == only)


def request(paths: LakePaths, loop: str, version: str, *, evidence: dict, now: datetime.datetime) -> ApprovalState:
    """Ask for approval of a new version (idempotent: an existing request or verdict stands)."""
    with table_lock(paths, _LOCK):
        current = state(paths, loop, version)
        if current is not None:
            return current
        _append(paths, loop, version, "requested", actor=f"loop:{loop}", reason="new policy version",
                evidence=evidence, now=now)
    return "pending"


def approve(paths: LakePaths, loop: str, version: str, *, actor: str, reason: str = "",
            now: datetime.datetime | None = None) -> None:
    """Approve a pending version; it is actuated from the next decision run."""
    _decide(paths, loop, version, "approved", actor=actor, reason=reason, now=now)


def reject(paths: LakePaths, loop: str, version: str, *, actor: str, reason: str,
           now: datetime.datetime | None = None) -> None:
    """Reject a pending version; the loop keeps actuating control (or its last approved version)."""
    if not reason.strip():
        raise LoopError(f"rejecting {loop} {version}", "no reason was given",
                        "Say why (--reason), so the loop's owner knows what to change.")
    _decide(paths, loop, version, "rejected", actor=actor, reason=reason, now=now)


def _decide(paths: LakePaths, loop: str, version: str, event: str, *, actor: str, reason: str,
            now: datetime.datetime | None) -> None:
    if not actor.strip():
        raise LoopError(f"{event} {loop} {version}", "the actor is empty", "Say who decides (--actor or $USER).")
    with table_lock(paths, _LOCK):  # check and write under one lock: two approvers cannot both win
        current = state(paths, loop, version)
        if current is None:
            raise LoopError(f"{loop} {version}", "no approval was requested for this version",
                            "List pending versions with `growthlake approvals list`.")
        if current != "pending":
            raise LoopError(f"{loop} {version}", f"it is already {current}",
                            "A verdict is final; a changed policy comes back as a new version.")
        _append(paths, loop, version, event, actor=actor, reason=reason, evidence={}, now=now)


def _append(paths: LakePaths, loop: str, version: str, event: str, *, actor: str, reason: str, evidence: dict,
            now: datetime.datetime | None) -> None:
    """Append one event (the caller holds the approvals lock) and its audit record."""
    at = now or datetime.datetime.now(datetime.UTC)
    row = pa.Table.from_pylist([{"loop": loop, "version": version, "event": event, "actor": actor, "reason": reason,
                                 "evidence": json.dumps(evidence, default=str, sort_keys=True), "at": at}],
                               schema=APPROVALS)
    delta_io.append(paths.approvals, row, operation=f"approval-{event}", metadata={"loop": loop, "version": version})
    audit.record(paths, [audit.AuditRecord(
        decision_id=audit.decision_id(loop, at.date(), f"approval-{event}", version), decision_day=at.date(),
        loop=loop, kind="approval", policy_version=version, feature_snapshot="n/a", guardrail_verdict="n/a",
        approval_state=_STATE_OF_EVENT[event], actor=actor, decided_at=at,
        evidence=json.dumps({"event": event, "reason": reason, **evidence}, default=str, sort_keys=True))])

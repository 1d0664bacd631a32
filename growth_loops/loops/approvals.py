"""The store of the loops' lifecycle: approvals, autonomy, rollbacks and the kill switch.

An append-only Delta table of lifecycle events (``requested``, ``canary_started``, ``approved``,
``auto_approved``, ``rejected``, ``rolled_back`` for a version; ``stopped`` / ``resumed`` for a loop,
recorded with version ``*``). The state of a (loop, version) is the fold of its events through the
state machine of ``loops.lifecycle``; every new event is checked by that machine under the table's
lock before it is written (two approvers cannot both win), and is also an audit-log record.
``requested`` / ``canary_started`` come from the loop when it first runs a version; ``approved`` /
``rejected`` from a person (``growthlake approvals approve|reject``); ``auto_approved`` from an auto
loop with the evidence the machine requires; ``rolled_back`` from a guardrail breach;
``stopped`` / ``resumed`` from ``growthlake loops stop|resume``.
"""

from __future__ import annotations

import datetime
import json

import polars as pl
import pyarrow as pa

from growth_loops.loops import audit
from growth_loops.loops.errors import LoopError
from growth_loops.loops.lifecycle import EVENTS, LOOP_EVENTS, Event, Lifecycle, VersionState, fold, transition
from lake import delta_io
from lake.locks import table_lock
from lake.paths import LakePaths

__all__ = ["APPROVALS", "LOOP_VERSION", "ApprovalState", "approve", "auto_approve", "lifecycle", "list_approvals",
           "list_events", "record_event", "reject", "request", "roll_back", "state"]

ApprovalState = VersionState
LOOP_VERSION = "*"  # the version of loop-level events (the kill switch)
_TS = pa.timestamp("us", tz="UTC")
_LOCK = "decisions_approvals"

APPROVALS = pa.schema(
    [
        pa.field("loop", pa.string(), nullable=False),
        pa.field("version", pa.string(), nullable=False),  # "*" for stopped / resumed
        pa.field("event", pa.string(), nullable=False),  # see loops.lifecycle.EVENTS and LOOP_EVENTS
        pa.field("actor", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("evidence", pa.string(), nullable=False),  # JSON the event was made with
        pa.field("at", _TS, nullable=False),
    ]
)
_RANK = {"requested": 0, "canary_started": 0}  # a verdict given in the same microsecond comes after its request


def _events(paths: LakePaths) -> pl.DataFrame:
    frame = pl.from_arrow(delta_io.read(paths.approvals, APPROVALS))
    assert isinstance(frame, pl.DataFrame)
    rank = pl.col("event").replace_strict(_RANK, default=1, return_dtype=pl.Int8)
    return frame.sort(pl.col("at"), rank, maintain_order=True)


def _as_event(row: dict) -> Event:
    evidence = json.loads(row["evidence"] or "{}")
    return Event(row["event"], stable_days=int(evidence.get("stable_days", 0)),
                 required_days=int(evidence.get("required_days", 0)))


def _lifecycle(events: pl.DataFrame, loop: str, version: str) -> Lifecycle:
    mine = events.filter((pl.col("loop") == loop) & pl.col("version").is_in([version, LOOP_VERSION]))
    return fold(loop, version, (_as_event(r) for r in mine.iter_rows(named=True)))


def list_events(paths: LakePaths, *, loop: str | None = None, kind: str | None = None) -> pl.DataFrame:
    """The stored lifecycle events (optionally of one loop or kind), oldest first."""
    events = _events(paths)
    if loop is not None:
        events = events.filter(pl.col("loop") == loop)
    return events if kind is None else events.filter(pl.col("event") == kind)


def lifecycle(paths: LakePaths, loop: str, version: str) -> Lifecycle:
    """The version's state and whether the loop is stopped."""
    return _lifecycle(_events(paths), loop, version)


def state(paths: LakePaths, loop: str, version: str) -> ApprovalState | None:
    """The version's state, or None if it was never requested."""
    return lifecycle(paths, loop, version).state


def list_approvals(paths: LakePaths, *, loop: str | None = None,
                   only: ApprovalState | tuple[ApprovalState, ...] | None = None) -> pl.DataFrame:
    """One row per (loop, version): its state, who last acted, when, why, and when it was requested."""
    events = _events(paths)
    if loop is not None:
        events = events.filter(pl.col("loop") == loop)
    schema: dict[str, pl.DataType | type[pl.DataType]] = {
        "loop": pl.String, "version": pl.String, "state": pl.String, "stopped": pl.Boolean,
              "actor": pl.String, "reason": pl.String, "at": pl.Datetime("us", "UTC"),
              "requested_at": pl.Datetime("us", "UTC"), "evidence": pl.String}
    rows = []
    versions = events.filter(pl.col("version") != LOOP_VERSION)
    for (name, version), mine in versions.group_by("loop", "version", maintain_order=True):
        current = _lifecycle(events, str(name), str(version))
        last, first = mine.row(-1, named=True), mine.row(0, named=True)
        rows.append({"loop": name, "version": version, "state": current.state, "stopped": current.stopped,
                     "actor": last["actor"], "reason": last["reason"], "at": last["at"],
                     "requested_at": first["at"], "evidence": first["evidence"]})
    table = pl.DataFrame(rows, schema=schema).sort("requested_at", "loop", "version")
    if only is None:
        return table
    return table.filter(pl.col("state").is_in([only] if isinstance(only, str) else list(only)))


def request(paths: LakePaths, loop: str, version: str, *, evidence: dict, now: datetime.datetime,
            mode: str = "human") -> ApprovalState:
    """Register a new version (idempotent: an existing one keeps its state).

    ``mode="human"``: it waits for a person (``pending``); ``mode="auto"``: it starts as a canary.
    """
    with table_lock(paths, _LOCK):
        current = state(paths, loop, version)
        if current is not None:
            return current
        kind = "requested" if mode == "human" else "canary_started"
        _append(paths, loop, version, kind, actor=f"loop:{loop}", reason="new policy version", evidence=evidence,
                now=now)
    return "pending" if mode == "human" else "canary"


def approve(paths: LakePaths, loop: str, version: str, *, actor: str, reason: str = "",
            now: datetime.datetime | None = None) -> None:
    """A person approves a pending (or canary) version; it is actuated fully from the next decision run."""
    record_event(paths, loop, version, "approved", actor=actor, reason=reason, now=now)


def reject(paths: LakePaths, loop: str, version: str, *, actor: str, reason: str,
           now: datetime.datetime | None = None) -> None:
    """Reject a pending (or canary) version; the loop actuates control until a new version."""
    if not reason.strip():
        raise LoopError(f"rejecting {loop} {version}", "no reason was given",
                        "Say why (--reason), so the loop's owner knows what to change.")
    record_event(paths, loop, version, "rejected", actor=actor, reason=reason, now=now)


def auto_approve(paths: LakePaths, loop: str, version: str, *, stable_days: int, required_days: int,
                 evidence: dict, now: datetime.datetime | None = None) -> None:
    """The loop approves its canary version itself; refused without ``required_days`` stable days."""
    record_event(paths, loop, version, "auto_approved", actor=f"auto:{loop}",
                 reason=f"{stable_days} consecutive canary days of powered, passing guardrails",
                 evidence={**evidence, "stable_days": stable_days, "required_days": required_days}, now=now)


def roll_back(paths: LakePaths, loop: str, version: str, *, reason: str, evidence: dict,
              now: datetime.datetime | None = None) -> None:
    """A guardrail breach: the version is rolled back for good."""
    record_event(paths, loop, version, "rolled_back", actor=f"auto:{loop}", reason=reason, evidence=evidence, now=now)


def record_event(paths: LakePaths, loop: str, version: str, kind: str, *, actor: str, reason: str,
                 evidence: dict | None = None, now: datetime.datetime | None = None) -> Lifecycle:
    """Check ``kind`` against the state machine and append it (under the table's lock).

    Raises:
        LoopError: when the actor is empty or the machine refuses the event (the message says why).
    """
    if not actor.strip():
        raise LoopError(f"{kind} {loop} {version}", "the actor is empty", "Say who decides (--actor or $USER).")
    if kind not in EVENTS + LOOP_EVENTS:
        raise LoopError(f"{loop} {version}", f"event {kind!r} is unknown", "Use a lifecycle event.")
    evidence = evidence or {}
    with table_lock(paths, _LOCK):  # check and write under one lock: two approvers cannot both win
        events = _events(paths)
        current = _lifecycle(events, loop, version)
        after = transition(current, Event(kind, stable_days=int(evidence.get("stable_days", 0)),
                                          required_days=int(evidence.get("required_days", 0))))
        _append(paths, loop, LOOP_VERSION if kind in LOOP_EVENTS else version, kind, actor=actor, reason=reason,
                evidence=evidence, now=now, state=after)
    return after


def _append(paths: LakePaths, loop: str, version: str, event: str, *, actor: str, reason: str, evidence: dict,
            now: datetime.datetime | None, state: Lifecycle | None = None) -> None:
    """Append one event (the caller holds the approvals lock) and its audit record."""
    at = now or datetime.datetime.now(datetime.UTC)
    row = pa.Table.from_pylist([{"loop": loop, "version": version, "event": event, "actor": actor, "reason": reason,
                                 "evidence": json.dumps(evidence, default=str, sort_keys=True), "at": at}],
                               schema=APPROVALS)
    delta_io.append(paths.approvals, row, operation=f"lifecycle-{event}", metadata={"loop": loop, "version": version})
    if state is None:
        state = Lifecycle(loop, version, "pending" if event == "requested" else "canary")
    # A rollback's own audit record (kind "rollback", with the verdicts) is the decision run's; the
    # lifecycle event beside it is one more approval-state change.
    kind = {"stopped": "stop", "resumed": "resume"}.get(event, "approval")
    audit.record(paths, [audit.AuditRecord(
        decision_id=audit.decision_id(loop, at.date(), f"lifecycle-{event}", f"{version}@{at.isoformat()}"),
        decision_day=at.date(), loop=loop, kind=kind, policy_version=version, feature_snapshot="n/a",
        guardrail_verdict="n/a", approval_state=("stopped" if state.stopped else state.state or "n/a"), actor=actor,
        decided_at=at, evidence=json.dumps({"event": event, "reason": reason, **evidence}, default=str,
                                           sort_keys=True))])

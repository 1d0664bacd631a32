"""The audit of one staged silver step: the Great Expectations suites on the frames about to be committed.

* ``gx_silver_events`` — the step's rows, typed and resolved (every bronze row of the step, whether
  new or reprocessed), attributed per landing hour as bronze does (:func:`lake.ingest.audit.audit_hours`):
  the hours that fail on their own rows are named in ``metadata["failing_hours"]``;
* ``gx_silver_identity_map`` — the identity rows about to be upserted (the key's uniqueness in the
  whole table is what the upsert by key maintains);
* ``gx_silver_sessions`` — the full content of the session_date partitions about to be replaced.

Sessions and identity rows carry no landing hour: a failure there holds the whole step.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from lake.ingest.audit import Auditor, audit_hours, gx_auditor
from lake.schemas import SILVER_EVENTS, SILVER_IDENTITY_MAP, SILVER_SESSIONS
from lake.silver.steps import EventsStage, SessionsStage
from lake.silver.tables import to_arrow
from lake.silver.transform import IdentityUpdate
from lake.wap import CheckOutcome, outcome_of

__all__ = ["SILVER_CHECKS", "SilverGate", "StagedStep", "audit_step"]

SILVER_CHECKS = {"events": "gx_silver_events", "identity_map": "gx_silver_identity_map",
                 "sessions": "gx_silver_sessions"}
"""Table -> the name of its check (the Dagster asset check reports it under that name)."""


@dataclass(frozen=True)
class SilverGate:
    """How a silver build audits its staged steps.

    Attributes:
        planned_events: the tracking plan's event names (parameter of the ``silver_events`` suite).
        auditor: validates a frame with a suite (Great Expectations by default).
    """

    planned_events: tuple[str, ...]
    auditor: Auditor = gx_auditor


@dataclass
class StagedStep:
    """The frames one step would commit (see ``lake.silver.steps``)."""

    identity: IdentityUpdate
    events: EventsStage
    sessions: SessionsStage


def audit_step(gate: SilverGate, staged: StagedStep) -> list[CheckOutcome]:
    """Validate the staged frames with the three silver suites (a suite with no staged row passes)."""
    params: dict[str, Any] = {"planned_events": list(gate.planned_events)}
    checks = [_events_check(gate, staged, params)]
    for table, frame, schema, suite in (
            ("identity_map", staged.identity.rows, SILVER_IDENTITY_MAP, "silver_identity_map"),
            ("sessions", staged.sessions.rows, SILVER_SESSIONS, "silver_sessions")):
        name = SILVER_CHECKS[table]
        if frame.height == 0:
            checks.append(CheckOutcome(name, True, f"{suite}: no staged row", {"rows_validated": 0}))
            continue
        checks.append(outcome_of(name, gate.auditor(suite, to_arrow(frame, schema), params),
                                 metadata={"rows_validated": frame.height}))
    return checks


def _events_check(gate: SilverGate, staged: StagedStep, params: dict[str, Any]) -> CheckOutcome:
    name = SILVER_CHECKS["events"]
    frame = staged.events.fresh
    if frame.height == 0:
        return CheckOutcome(name, True, "silver_events: no staged row", {"rows_validated": 0, "failing_hours": {}})
    audit = audit_hours(gate.auditor, "silver_events", to_arrow(frame, SILVER_EVENTS), column="_landing_partition",
                        parameters_for=lambda _hours: params)
    failing = {hour: outcome.summary() for hour, outcome in sorted(audit.failing.items())}
    meta: dict[str, Any] = {"rows_validated": frame.height, "validations": audit.validations, "failing_hours": failing}
    return CheckOutcome(name, audit.settled, audit.outcome.summary() if not failing else
                        f"landing hour(s) {', '.join(list(failing)[:5])} failed: {next(iter(failing.values()))}", meta)


def held_hours(checks: Collection[CheckOutcome]) -> dict[str, str]:
    """The landing hours the events check holds on their own rows (hour -> why)."""
    for check in checks:
        if check.name == SILVER_CHECKS["events"]:
            return dict(check.metadata.get("failing_hours") or {})
    return {}

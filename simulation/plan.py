"""What the simulator needs from the tracking plan: event names, property types, required names.

A view over :func:`lake.contracts.load_plan` (one reader of the contract for the whole project),
checked against the events the simulator emits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lake.contracts import load_plan
from lake.contracts.plan import PropertyType
from lake.errors import TrackingPlanError

from .catalog import EMITTED_EVENTS

__all__ = ["PlanView", "load_plan_view"]


@dataclass(frozen=True)
class PlanView:
    """Per event: ``{property: type}`` and the required property names, in plan order."""

    version: str
    types: dict[str, dict[str, PropertyType]]
    required: dict[str, tuple[str, ...]]

    @property
    def event_names(self) -> frozenset[str]:
        return frozenset(self.types)


def load_plan_view(path: str | os.PathLike[str] | None = None) -> PlanView:
    """Load the plan (default: ``$GROWTHLAKE_TRACKING_PLAN`` or the shipped one) and check that
    it defines every event the simulator emits.

    Raises:
        TrackingPlanError: the file is missing, invalid, or lacks an event the model emits.
    """
    plan = load_plan(path)
    types = {name: {p.name: p.type for p in ev.properties.values()} for name, ev in plan.events.items()}
    required = {name: ev.required for name, ev in plan.events.items()}
    missing = [e for e in EMITTED_EVENTS if e not in types]
    if missing:
        raise TrackingPlanError(plan.source,
                                f"does not define {missing}, which the simulator emits; add them to the plan")
    return PlanView(version=plan.version, types=types, required=required)

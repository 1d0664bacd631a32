"""Tracking-plan compatibility: which changes break consumers and need a major version bump."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lake.contracts.plan import TrackingPlan
from lake.errors import BreakingPlanChange

ChangeKind = Literal["breaking", "additive"]

__all__ = ["PlanChange", "diff_plans", "check_version_bump"]


@dataclass(frozen=True)
class PlanChange:
    kind: ChangeKind
    what: str

    def __str__(self) -> str:
        return self.what


def diff_plans(old: TrackingPlan, new: TrackingPlan) -> list[PlanChange]:
    """List the changes from ``old`` to ``new``, each classified breaking or additive."""
    changes: list[PlanChange] = []
    for name, old_ev in old.events.items():
        new_ev = new.events.get(name)
        if new_ev is None:
            changes.append(PlanChange("breaking", f"event {name} removed"))
            continue
        for pname, op in old_ev.properties.items():
            np_ = new_ev.properties.get(pname)
            where = f"{name}.{pname}"
            if np_ is None:
                kind: ChangeKind = "breaking" if op.required else "additive"
                was = "required" if op.required else "optional"
                changes.append(PlanChange(kind, f"{was} property {where} removed"))
                continue
            if np_.type != op.type:
                changes.append(PlanChange("breaking", f"property {where} retyped {op.type} -> {np_.type}"))
            if np_.required and not op.required:
                changes.append(PlanChange("breaking", f"property {where} became required"))
            old_enum = set(op.enum) if op.enum is not None else None
            new_enum = set(np_.enum) if np_.enum is not None else None
            if new_enum is not None and old_enum is None:
                changes.append(PlanChange("breaking", f"property {where} gained an enum restriction"))
            elif old_enum is not None and new_enum is not None and old_enum != new_enum:
                if old_enum - new_enum:
                    removed = sorted(map(str, old_enum - new_enum))
                    changes.append(PlanChange("breaking", f"property {where} lost allowed values {removed}"))
                if new_enum - old_enum:
                    added = sorted(map(str, new_enum - old_enum))
                    changes.append(PlanChange("additive", f"property {where} gained allowed values {added}"))
            if (np_.min is not None and (op.min is None or np_.min > op.min)) or (
                np_.max is not None and (op.max is None or np_.max < op.max)
            ):
                changes.append(PlanChange("breaking", f"property {where} range narrowed"))
            if op.pii and not np_.pii:
                changes.append(PlanChange("breaking", f"property {where} no longer marked pii"))
        for pname, np_ in new_ev.properties.items():
            if pname not in old_ev.properties:
                kind = "breaking" if np_.required else "additive"
                now = "required" if np_.required else "optional"
                changes.append(PlanChange(kind, f"{now} property {name}.{pname} added"))
    for name in new.events.keys() - old.events.keys():
        changes.append(PlanChange("additive", f"event {name} added"))
    return changes


def _semver(v: str) -> tuple[int, int, int]:
    major, minor, patch = (int(x) for x in v.split("."))
    return major, minor, patch


def check_version_bump(old: TrackingPlan, new: TrackingPlan) -> list[PlanChange]:
    """Raise :class:`BreakingPlanChange` when a breaking change comes without a major bump.

    Returns the list of changes (possibly empty) when the version is adequate.
    """
    changes = diff_plans(old, new)
    breaking = [c.what for c in changes if c.kind == "breaking"]
    if breaking and _semver(new.version)[0] <= _semver(old.version)[0]:
        raise BreakingPlanChange(old.version, new.version, breaking)
    return changes

"""What the simulator needs from the tracking plan: event names, property types, required names.

Read straight from the YAML (not through ``lake.contracts``) so the simulator and the ingestion
stay two independent readings of the same contract: a drift between them shows up in tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from lake.errors import TrackingPlanError

from .catalog import EMITTED_EVENTS

__all__ = ["PlanView", "load_plan_view", "default_plan_path"]


def default_plan_path() -> Path:
    """``$GROWTHLAKE_TRACKING_PLAN``, else the plan shipped in ``lake/contracts``."""
    env = os.environ.get("GROWTHLAKE_TRACKING_PLAN")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "lake" / "contracts" / "tracking_plan.yaml"


@dataclass(frozen=True)
class PlanView:
    """Per event: ``{property: type}`` and the required property names, in plan order."""

    version: str
    types: dict[str, dict[str, str]]
    required: dict[str, tuple[str, ...]]

    @property
    def event_names(self) -> frozenset[str]:
        return frozenset(self.types)


def load_plan_view(path: str | os.PathLike[str] | None = None) -> PlanView:
    """Load the plan and check that it defines every event the simulator emits.

    Raises:
        TrackingPlanError: the file is missing, not YAML, or lacks an event the model emits.
    """
    p = Path(path) if path is not None else default_plan_path()
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise TrackingPlanError(str(p), "file not found (pass SimulatorConfig(tracking_plan=...))") from None
    except yaml.YAMLError as exc:
        raise TrackingPlanError(str(p), f"is not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), dict):
        raise TrackingPlanError(str(p), "needs a top-level `events` mapping")
    types: dict[str, dict[str, str]] = {}
    required: dict[str, tuple[str, ...]] = {}
    for name, spec in doc["events"].items():
        props = (spec or {}).get("properties") or {}
        types[name] = {k: str((v or {}).get("type")) for k, v in props.items()}
        required[name] = tuple(k for k, v in props.items() if (v or {}).get("required"))
    missing = [e for e in EMITTED_EVENTS if e not in types]
    if missing:
        raise TrackingPlanError(str(p), f"does not define {missing}, which the simulator emits; add them to the plan")
    return PlanView(version=str(doc.get("version", "")), types=types, required=required)

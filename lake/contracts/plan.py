"""The tracking plan: a versioned, human-edited YAML contract for every event."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from lake.errors import TrackingPlanError
from lake.settings import current as current_settings

__all__ = ["PropertySpec", "EventSpec", "TrackingPlan", "load_plan", "DEFAULT_PLAN_PATH"]

DEFAULT_PLAN_PATH = Path(__file__).with_name("tracking_plan.yaml")

PropertyType = Literal["string", "integer", "number", "boolean"]
_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean")


@dataclass(frozen=True)
class PropertySpec:
    name: str
    type: PropertyType
    required: bool = False
    enum: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    pii: bool = False


@dataclass(frozen=True)
class EventSpec:
    name: str
    properties: dict[str, PropertySpec]
    description: str = ""

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.properties.values() if p.required)

    @property
    def pii(self) -> frozenset[str]:
        return frozenset(p.name for p in self.properties.values() if p.pii)


@dataclass(frozen=True)
class TrackingPlan:
    version: str
    events: dict[str, EventSpec]
    max_clock_skew_seconds: int = 600
    max_lateness_days: int = 30
    consent_required: str = "analytics"
    source: str = field(default="<memory>", compare=False)

    @property
    def event_names(self) -> list[str]:
        return sorted(self.events)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], *, source: str = "<memory>") -> TrackingPlan:
        """Build a plan from its YAML document, rejecting malformed entries with their path."""
        if not isinstance(doc, dict) or "version" not in doc or "events" not in doc:
            raise TrackingPlanError(source, "needs top-level `version` and `events`")
        version = str(doc["version"])
        if len(version.split(".")) != 3 or not all(x.isdigit() for x in version.split(".")):
            raise TrackingPlanError(source, f"version {version!r} is not semver MAJOR.MINOR.PATCH")
        events: dict[str, EventSpec] = {}
        for ename, edoc in (doc["events"] or {}).items():
            edoc = edoc or {}
            props: dict[str, PropertySpec] = {}
            for pname, pdoc in (edoc.get("properties") or {}).items():
                ptype = (pdoc or {}).get("type")
                if ptype not in _TYPES:
                    raise TrackingPlanError(
                        source, f"events.{ename}.properties.{pname}.type is {ptype!r}; use one of {_TYPES}"
                    )
                enum = pdoc.get("enum")
                props[pname] = PropertySpec(
                    name=pname,
                    type=ptype,
                    required=bool(pdoc.get("required", False)),
                    enum=tuple(enum) if enum is not None else None,
                    min=pdoc.get("min"),
                    max=pdoc.get("max"),
                    pii=bool(pdoc.get("pii", False)),
                )
            events[ename] = EventSpec(name=ename, properties=props, description=edoc.get("description", ""))
        env = doc.get("envelope") or {}
        return cls(
            version=version,
            events=events,
            max_clock_skew_seconds=int(env.get("max_clock_skew_seconds", 600)),
            max_lateness_days=int(env.get("max_lateness_days", 30)),
            consent_required=str(env.get("consent_required", "analytics")),
            source=source,
        )


def load_plan(path: str | os.PathLike[str] | None = None) -> TrackingPlan:
    """Load the tracking plan (default: the one shipped in ``lake/contracts``).

    ``$GROWTHLAKE_TRACKING_PLAN`` overrides the default path, so a team can point ingestion at
    their own plan without editing the package.
    """
    chosen = path or current_settings().tracking_plan or DEFAULT_PLAN_PATH
    p = Path(chosen)
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise TrackingPlanError(str(p), "file not found") from None
    except yaml.YAMLError as exc:
        raise TrackingPlanError(str(p), f"is not valid YAML ({exc})") from None
    return TrackingPlan.from_dict(doc, source=str(p))

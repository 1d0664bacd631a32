"""Data contracts: the tracking plan, line validation and plan compatibility."""

from lake.contracts.compat import PlanChange, check_version_bump, diff_plans
from lake.contracts.plan import DEFAULT_PLAN_PATH, EventSpec, PropertySpec, TrackingPlan, load_plan
from lake.contracts.violations import VIOLATION_TYPES, Violation

__all__ = [
    "DEFAULT_PLAN_PATH",
    "EventSpec",
    "PlanChange",
    "PropertySpec",
    "TrackingPlan",
    "VIOLATION_TYPES",
    "Violation",
    "check_version_bump",
    "diff_plans",
    "load_plan",
]

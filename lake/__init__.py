"""growthlake's storage layer: paths, Delta IO, contracts, PII, ingestion and its ledger.

Usable without Dagster; ``orchestration/`` only wires it.
"""

from lake.errors import (
    BreakingPlanChange,
    ConfigError,
    GateFailed,
    GrowthlakeError,
    LandingPartitionError,
    PiiKeyMissing,
    ReconciliationError,
    TrackingPlanError,
)
from lake.paths import LakePaths, resolve_root

__all__ = [
    "BreakingPlanChange",
    "ConfigError",
    "GateFailed",
    "GrowthlakeError",
    "LakePaths",
    "LandingPartitionError",
    "PiiKeyMissing",
    "ReconciliationError",
    "TrackingPlanError",
    "resolve_root",
]

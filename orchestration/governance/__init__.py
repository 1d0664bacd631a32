"""Governance: the right to erasure (consent revocations processed nightly, before the warehouse build)."""

from orchestration.governance.assets import ERASURES_KEY, process_erasures
from orchestration.governance.schedules import nightly_erasures_job, nightly_erasures_schedule

__all__ = ["ERASURES_KEY", "nightly_erasures_job", "nightly_erasures_schedule", "process_erasures"]

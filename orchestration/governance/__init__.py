"""Governance: the right to erasure (consent revocations processed nightly, before the warehouse build)
and the nightly table maintenance (compaction, vacuum)."""

from orchestration.governance.assets import ERASURES_KEY, process_erasures
from orchestration.governance.checks import erased_subjects_absent
from orchestration.governance.maintenance import nightly_maintenance_job, nightly_maintenance_schedule
from orchestration.governance.schedules import nightly_erasures_job, nightly_erasures_schedule

__all__ = ["ERASURES_KEY", "erased_subjects_absent", "nightly_erasures_job", "nightly_erasures_schedule",
           "nightly_maintenance_job", "nightly_maintenance_schedule", "process_erasures"]

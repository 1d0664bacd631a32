"""Bronze layer wiring: landing hour -> events, quarantine, ledger."""

from orchestration.bronze.assets import ingest_landing_hour, landing_events
from orchestration.bronze.checks import landing_drift, ledger_reconciles, volume_within_history
from orchestration.bronze.schedules import bronze_ingestion_job, hourly_ingestion_schedule
from orchestration.bronze.sensors import landing_files_sensor, landing_hour_readable

__all__ = [
    "bronze_ingestion_job",
    "hourly_ingestion_schedule",
    "ingest_landing_hour",
    "landing_events",
    "landing_drift",
    "landing_files_sensor",
    "landing_hour_readable",
    "ledger_reconciles",
    "volume_within_history",
]

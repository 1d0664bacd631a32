"""Arrow schemas of the tables growthlake owns (the Delta contracts of the bronze layer)."""

from __future__ import annotations

import pyarrow as pa

__all__ = ["UTC_TS", "BRONZE_EVENTS", "BRONZE_QUARANTINE", "INGESTION_LEDGER"]

UTC_TS = pa.timestamp("us", tz="UTC")

BRONZE_EVENTS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("event_ts", UTC_TS, nullable=False),
        pa.field("received_at", UTC_TS, nullable=False),
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("anonymous_id", pa.string()),
        pa.field("session_id", pa.string()),
        pa.field("properties", pa.string(), nullable=False),  # JSON object, PII masked
        pa.field("ip_hash", pa.string()),
        pa.field("browser_family", pa.string()),
        pa.field("device_type", pa.string()),
        pa.field("locale", pa.string()),
        pa.field("consent_marketing", pa.bool_()),
        pa.field("plan_version", pa.string(), nullable=False),
        pa.field("_landing_partition", pa.string(), nullable=False),
        pa.field("_source_file", pa.string(), nullable=False),
        pa.field("_line_number", pa.int32(), nullable=False),
        pa.field("_ingested_at", UTC_TS, nullable=False),
    ]
)

BRONZE_QUARANTINE = pa.schema(
    [
        pa.field("raw_line", pa.string(), nullable=False),  # the landed line, PII masked
        pa.field("masked_fields", pa.list_(pa.string())),  # JSON paths already hashed in raw_line
        pa.field("violation_type", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("event_id", pa.string()),
        pa.field("event_name", pa.string()),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line_number", pa.int32(), nullable=False),
        pa.field("landing_partition", pa.string(), nullable=False),
        pa.field("landing_date", pa.date32(), nullable=False),
        pa.field("plan_version", pa.string(), nullable=False),
        pa.field("ingested_at", UTC_TS, nullable=False),
        pa.field("resolution", pa.string()),  # null (open) | replayed | replayed_duplicate
        pa.field("resolved_at", UTC_TS),
    ]
)

INGESTION_LEDGER = pa.schema(
    [
        pa.field("landing_partition", pa.string(), nullable=False),
        pa.field("landing_date", pa.date32(), nullable=False),
        pa.field("lines_landed", pa.int64(), nullable=False),
        pa.field("bronze_rows", pa.int64(), nullable=False),
        pa.field("quarantined", pa.int64(), nullable=False),
        pa.field("consent_dropped", pa.int64(), nullable=False),
        pa.field("duplicates_dropped", pa.int64(), nullable=False),
        pa.field("held_for_audit", pa.int64(), nullable=False),
        pa.field("reconciled", pa.bool_(), nullable=False),
        pa.field("quarantined_by_reason", pa.string(), nullable=False),  # JSON object reason -> count
        pa.field("event_dates", pa.list_(pa.date32())),
        pa.field("files", pa.list_(pa.string())),
        pa.field("plan_version", pa.string(), nullable=False),
        pa.field("gate_status", pa.string(), nullable=False),  # passed | failed
        pa.field("gate_summary", pa.string(), nullable=False),
        pa.field("updated_at", UTC_TS, nullable=False),
    ]
)

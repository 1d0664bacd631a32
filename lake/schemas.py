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

# -- silver layer (lake/silver) ----------------------------------------------------------------------

__all__ += ["SILVER_IDENTITY_MAP", "SILVER_EVENTS", "SILVER_SESSIONS", "SILVER_BUILD_STATE"]

SILVER_IDENTITY_MAP = pa.schema(
    [
        pa.field("anonymous_id", pa.string(), nullable=False),  # primary key: one row per linked device
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("linked_at", UTC_TS, nullable=False),  # event_ts of the earliest event carrying both ids
        pa.field("link_event_id", pa.string(), nullable=False),
        pa.field("link_event_name", pa.string(), nullable=False),
    ]
)

SILVER_EVENTS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_name", pa.string(), nullable=False),
        pa.field("event_ts", UTC_TS, nullable=False),
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("received_at", UTC_TS, nullable=False),
        pa.field("person_id", pa.string()),  # user_id, else the mapped user, else "anon:<anonymous_id>"
        pa.field("user_id", pa.string()),
        pa.field("anonymous_id", pa.string()),
        pa.field("client_session_id", pa.string()),  # bronze session_id (client-side), not silver/sessions'
        pa.field("device_type", pa.string()),
        pa.field("browser_family", pa.string()),
        pa.field("locale", pa.string()),
        pa.field("consent_marketing", pa.bool_()),
        pa.field("revenue", pa.float64()),  # payment_succeeded.amount only
        pa.field("currency", pa.string()),
        pa.field("plan", pa.string()),
        pa.field("onboarding_step", pa.string()),
        pa.field("feature", pa.string()),
        pa.field("referrer", pa.string()),
        pa.field("utm_source", pa.string()),
        pa.field("utm_medium", pa.string()),
        pa.field("utm_campaign", pa.string()),
        pa.field("properties", pa.string(), nullable=False),  # JSON object, PII masked
        pa.field("_landing_partition", pa.string(), nullable=False),
    ]
)

SILVER_SESSIONS = pa.schema(
    [
        pa.field("session_id", pa.string(), nullable=False),  # hash of person_id and the first event_id
        pa.field("person_id", pa.string(), nullable=False),
        pa.field("session_start", UTC_TS, nullable=False),
        pa.field("session_end", UTC_TS, nullable=False),
        pa.field("session_date", pa.date32(), nullable=False),  # UTC date of session_start
        pa.field("event_count", pa.int64(), nullable=False),
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("first_event_name", pa.string(), nullable=False),
        pa.field("device_type", pa.string()),  # of the first event
        pa.field("is_bounce", pa.bool_(), nullable=False),  # exactly one event
    ]
)

SILVER_BUILD_STATE = pa.schema(
    [
        pa.field("bronze_version", pa.int64(), nullable=False),  # bronze/events version the silver tables reflect
        pa.field("identity_version", pa.int64()),  # Delta versions of the silver tables at that point
        pa.field("events_version", pa.int64()),
        pa.field("sessions_version", pa.int64()),
        pa.field("mode", pa.string(), nullable=False),  # incremental | rebuild
        pa.field("built_at", UTC_TS, nullable=False),
    ]
)

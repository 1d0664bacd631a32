"""Hourly partitions: one per landing hour folder (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

__all__ = ["FIRST_HOUR", "hourly"]

# A fixed start keeps the partition set stable across processes; backfills before it are refused
# by Dagster with a clear message (and by `growthlake run` before it starts).
FIRST_HOUR = datetime(2025, 1, 1, tzinfo=UTC)
hourly = dg.HourlyPartitionsDefinition(start_date=FIRST_HOUR.strftime("%Y-%m-%d-%H:%M"), timezone="UTC")

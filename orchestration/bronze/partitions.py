"""Hourly partitions: one per landing hour folder (UTC)."""

from __future__ import annotations

import dagster as dg

__all__ = ["hourly"]

# A fixed start keeps the partition set stable across processes; backfills before it are refused
# by Dagster with a clear message.
hourly = dg.HourlyPartitionsDefinition(start_date="2025-01-01-00:00", timezone="UTC")

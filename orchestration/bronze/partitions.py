"""Hourly partitions: one per landing hour folder (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

__all__ = ["FIRST_HOUR", "WRITER_POOL", "hourly"]

# A fixed start keeps the partition set stable across processes; backfills before it are refused
# by Dagster with a clear message (and by `growthlake run` before it starts).
FIRST_HOUR = datetime(2025, 1, 1, tzinfo=UTC)
hourly = dg.HourlyPartitionsDefinition(start_date=FIRST_HOUR.strftime("%Y-%m-%d-%H:%M"), timezone="UTC")

# The Dagster concurrency pool of the steps that commit bronze and silver (ingest_landing_hour,
# build_silver_hour). It limits nothing until the instance gives it a limit, e.g.
# `dagster instance concurrency set growthlake_writers 1` on a Postgres instance shared by several
# machines, whose executors (in-process, multiprocess, Celery) then run one writer step at a time
# across all of them (DEPLOY.md).
WRITER_POOL = "growthlake_writers"

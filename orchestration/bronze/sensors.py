"""A sensor that ingests a landing hour again whenever new batch files arrive in it."""

import hashlib
from datetime import UTC, datetime, timedelta

import dagster as dg

from lake.ingest import list_landing_files, list_landing_partitions, parse_partition_key
from orchestration.bronze.schedules import bronze_ingestion_job
from orchestration.resources import LakeResource

__all__ = ["landing_files_sensor"]

LOOKBACK = timedelta(days=3)


@dg.sensor(job=bronze_ingestion_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def landing_files_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    """Request a run per landing hour (last 3 days) whose set of batch files changed."""
    paths = lake.paths()
    horizon = datetime.now(UTC) - LOOKBACK
    for key in list_landing_partitions(paths):
        if parse_partition_key(key) < horizon:
            continue
        files = list_landing_files(paths, key)
        if not files:
            continue
        digest = hashlib.sha256("|".join(f"{f.relative}:{f.size}" for f in files).encode()).hexdigest()[:16]
        # The run key makes Dagster skip a request it already made for this exact set of files.
        yield dg.RunRequest(run_key=f"{key}:{digest}", partition_key=key)

"""The landing sensor: observes the landing folders (the freshness of ``landing/events``) and ingests an hour
again whenever new batch files arrive in it."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from lake.ingest import list_landing_files, list_landing_partitions, parse_partition_key
from lake.landing import LandingFile, check_landing_hour
from lake.ledger import read_entries
from orchestration.bronze.assets import landing_events
from orchestration.bronze.partitions import hourly
from orchestration.bronze.schedules import bronze_ingestion_job
from orchestration.hours import HourCheck, check_events, run_hours
from orchestration.resources import LakeResource

__all__ = ["LANDING_CHECK", "LOOKBACK", "landing_files_sensor", "landing_hour_evaluation", "landing_hour_readable",
           "landing_observation"]

LOOKBACK = timedelta(days=3)
DATA_VERSION_TAG = "dagster/data_version"  # an observation's data version (Dagster's tag for it)
LANDING_CHECK = "landing_hour_readable"


def landing_hour_evaluation(paths, key: str, files: list[LandingFile] | None = None) -> dg.AssetCheckEvaluation:
    """The verdict of :func:`lake.landing.check_landing_hour` as a check evaluation of one landing hour."""
    passed, description, figures = check_landing_hour(paths, key, files)
    return dg.AssetCheckEvaluation(asset_key=landing_events.key, check_name=LANDING_CHECK, passed=passed,
                                   partition=key, description=description, metadata=figures,
                                   severity=dg.AssetCheckSeverity.ERROR)


@dg.asset_check(asset=landing_events.key, name=LANDING_CHECK, blocking=True, partitions_def=hourly,
                description="Every file of the landing hour can be opened and read (decompressed, for .gz). "
                "Evaluated by landing_files_sensor whenever an hour's files change, before it requests the hour's "
                "ingestion: a failing hour is not ingested (its files stay; nothing is lost) until it passes.")
def landing_hour_readable(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    """On demand (the UI): the hours of the run, judged as the sensor judges them."""
    paths = lake.paths()
    checks = [HourCheck(landing_events.key, LANDING_CHECK, key, e.passed, description=e.description,
                        metadata=dict(e.metadata))
              for key in run_hours(context) for e in [landing_hour_evaluation(paths, key)]]
    yield from check_events(context, checks)


def landing_observation(key: str, files: list[LandingFile]) -> dg.AssetObservation:
    """The observation of one landing hour: its data version is a digest of its file listing (names and
    sizes), ``dagster/last_updated_timestamp`` the newest file's modification time (what its freshness is
    measured from: a collector that stops delivering makes landing stale, however often it is observed)."""
    digest = hashlib.sha256("|".join(f"{f.relative}:{f.size}" for f in files).encode()).hexdigest()[:16]
    stamps = [f.modified for f in files if f.modified is not None]
    newest = max(stamps) if stamps else None
    metadata: dict[str, dg.RawMetadataValue] = {"files": len(files), "bytes": sum(f.size for f in files)}
    if newest is not None:
        metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(newest.timestamp())
        metadata["newest_file_at"] = newest.isoformat(timespec="seconds")
    return dg.AssetObservation(asset_key=landing_events.key, partition=key, metadata=metadata,
                               tags={DATA_VERSION_TAG: digest})


@dg.sensor(job=bronze_ingestion_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Observe each landing hour of the last 3 days (file listing -> data version, newest file -> "
                       "freshness of landing/events) and run hourly_ingestion for an hour whose files changed.")
def landing_files_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    """Per landing hour (last 3 days) whose set of batch files changed since the last tick: one observation of
    ``landing/events``; and a run request of each hour whose files are not those its ledger row says were
    ingested (an hour `growthlake run` already took in is not run again)."""
    paths = lake.paths()
    horizon = datetime.now(UTC) - LOOKBACK
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current: dict[str, str] = {}
    requests: list[dg.RunRequest] = []
    observations: list[dg.AssetObservation] = []
    events: list[dg.AssetCheckEvaluation] = []
    recent = [key for key in list_landing_partitions(paths) if parse_partition_key(key) >= horizon]
    ingested = {key: sorted(entry.files) for key, entry in read_entries(paths, recent).items()} if recent else {}
    for key in recent:
        files = list_landing_files(paths, key)
        if not files:
            continue
        observation = landing_observation(key, files)
        digest = observation.tags[DATA_VERSION_TAG]
        current[key] = digest
        pending = ingested.get(key) != sorted(f.relative for f in files)
        changed = seen.get(key) != digest
        verdict = landing_hour_evaluation(paths, key, files) if pending or changed else None
        if changed:
            observations.append(observation)
            if verdict is not None:
                events.append(verdict)
        if pending and verdict is not None:
            if verdict.passed:
                # The run key makes Dagster skip a request it already made for this exact set of files.
                requests.append(dg.RunRequest(run_key=f"{key}:{digest}", partition_key=key))
            else:
                context.log.warning(f"landing hour {key} held: {verdict.description}")
    return dg.SensorResult(run_requests=requests, asset_events=[*observations, *events],
                           cursor=json.dumps(current, sort_keys=True))

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
from orchestration.bronze.schedules import bronze_ingestion_job
from orchestration.gates import as_check_result
from orchestration.resources import LakeResource

__all__ = ["LANDING_CHECK", "LOOKBACK", "landing_evaluation", "landing_files_sensor", "landing_hour_readable",
           "landing_observation"]

LOOKBACK = timedelta(days=3)
DATA_VERSION_TAG = "dagster/data_version"  # an observation's data version (Dagster's tag for it)
LANDING_CHECK = "landing_hour_readable"


def landing_evaluation(held: dict[str, str], judged: int) -> dg.AssetCheckEvaluation:
    """One evaluation of ``landing_hour_readable`` over the recent landing hours: failed while any hour is held
    because a file of it cannot be read (``held``: hour -> why), naming them."""
    if held:
        first = sorted(held)[0]
        description = (f"{len(held)} landing hour(s) held, not ingested, until every file reads: "
                       f"{', '.join(sorted(held)[:5])}; {first}: {held[first]}")
    else:
        description = f"every recent landing hour reads ({judged} judged this tick)"
    return dg.AssetCheckEvaluation(asset_key=landing_events.key, check_name=LANDING_CHECK, passed=not held,
                                   description=description, metadata={"held_hours": sorted(held), "judged": judged},
                                   severity=dg.AssetCheckSeverity.ERROR)


@dg.asset_check(asset=landing_events.key, name=LANDING_CHECK, blocking=True,
                description="Every file of the recent landing hours can be opened and read (decompressed, for .gz). "
                "Evaluated by landing_files_sensor whenever an hour's files change, before it requests the hour's "
                "ingestion: a failing hour is held — not ingested, its files kept, nothing lost — until it reads.")
def landing_hour_readable(lake: LakeResource) -> dg.AssetCheckResult:
    """On demand (the UI): every landing hour of the sensor's look-back, judged as the sensor judges it."""
    paths = lake.paths()
    horizon = datetime.now(UTC) - LOOKBACK
    recent = [key for key in list_landing_partitions(paths) if parse_partition_key(key) >= horizon]
    held = {}
    for key in recent:
        passed, description, _figures = check_landing_hour(paths, key)
        if not passed:
            held[key] = description
    return as_check_result(landing_evaluation(held, len(recent)))


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
    # The cursor: each recent hour's file-listing digest, and the hours held because a file does not read.
    # (Dagster's SQLite storage keeps one runless evaluation per check and partition, so the check is one
    # evaluation over the recent hours, reported when the held set changes.)
    state = json.loads(context.cursor) if context.cursor else {}
    seen: dict[str, str] = state.get("digests", {}) if "digests" in state else state
    was_held: dict[str, str] = state.get("held", {})
    current: dict[str, str] = {}
    requests: list[dg.RunRequest] = []
    observations: list[dg.AssetObservation] = []
    held: dict[str, str] = {}
    judged = 0
    recent = [key for key in list_landing_partitions(paths) if parse_partition_key(key) >= horizon]
    ingested = {key: sorted(entry.files) for key, entry in read_entries(paths, recent).items()} if recent else {}
    for key in recent:
        files = list_landing_files(paths, key)
        if not files:
            continue
        observation = landing_observation(key, files)
        digest = observation.tags[DATA_VERSION_TAG]
        current[key] = digest
        if seen.get(key) != digest:
            observations.append(observation)
        if ingested.get(key) == sorted(f.relative for f in files):
            continue  # ingested as it is
        if seen.get(key) == digest and key in was_held:
            held[key] = was_held[key]  # unchanged since it was found unreadable: still held
            continue
        passed, description, _figures = check_landing_hour(paths, key, files)
        judged += 1
        if passed:
            # The run key makes Dagster skip a request it already made for this exact set of files.
            requests.append(dg.RunRequest(run_key=f"{key}:{digest}", partition_key=key))
        else:
            held[key] = description
            context.log.warning(f"landing hour {key} held: {description}")
    events: list[dg.AssetCheckEvaluation] = []
    if held.keys() != was_held.keys() or not context.cursor:
        events.append(landing_evaluation(held, judged))
    return dg.SensorResult(run_requests=requests, asset_events=[*observations, *events],
                           cursor=json.dumps({"digests": current, "held": held}, sort_keys=True))

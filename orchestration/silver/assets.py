"""Silver assets: bronze events stitched to people (identity map), typed, and sessionized."""

import dagster as dg
import pyarrow.compute as pc

from expectations import validate
from lake import delta_io
from lake.ledger import read_entry
from lake.schemas import SILVER_EVENTS, SILVER_IDENTITY_MAP, SILVER_SESSIONS
from lake.silver import build_silver
from orchestration.bronze.assets import EVENTS as BRONZE_EVENTS
from orchestration.bronze.partitions import hourly
from orchestration.resources import LakeResource
from orchestration.specs import hourly_delta_spec

__all__ = ["build_silver_hour", "SILVER_EVENTS_KEY", "SILVER_IDENTITY_KEY", "SILVER_SESSIONS_KEY"]

SILVER_EVENTS_KEY = dg.AssetKey(["silver", "events"])
SILVER_IDENTITY_KEY = dg.AssetKey(["silver", "identity_map"])
SILVER_SESSIONS_KEY = dg.AssetKey(["silver", "sessions"])
_SUITES = {SILVER_EVENTS_KEY: "silver_events", SILVER_IDENTITY_KEY: "silver_identity_map",
           SILVER_SESSIONS_KEY: "silver_sessions"}


def _spec(key: dg.AssetKey, description: str) -> dg.AssetSpec:
    return hourly_delta_spec(key, description, layer="silver", upstream=BRONZE_EVENTS)


@dg.multi_asset(
    name="build_silver_hour",
    specs=[
        _spec(SILVER_EVENTS_KEY,
              "Every bronze event once, typed, with its resolved person_id (stitched retroactively)."),
        _spec(SILVER_IDENTITY_KEY, "anonymous_id -> user_id, one row per linked device (the earliest link wins)."),
        _spec(SILVER_SESSIONS_KEY,
              "30-minute-inactivity sessions per person, rebuilt for people whose events changed."),
    ],
    check_specs=[dg.AssetCheckSpec(f"gx_{suite}", asset=key, blocking=True, partitions_def=hourly,
                                   description=f"Great Expectations suite {suite} on the rows this run wrote "
                                   "(events: the rows it added; sessions: the days it touched; identity_map: all).")
                 for key, suite in _SUITES.items()],
    partitions_def=hourly,
)
def build_silver_hour(context: dg.AssetExecutionContext, lake: LakeResource):
    """Bring silver up to date with bronze (incremental, exactly once), then gate what changed."""
    paths = lake.paths()
    key = context.partition_key
    result = build_silver(paths, landing_partitions=[key])
    summary = result.summary()
    context.log.info(f"silver after {key}: {summary}")
    for asset in _SUITES:
        yield dg.MaterializeResult(asset_key=asset, metadata={**summary, "partition": key})

    # The events this run added (the landing hours it processed; their files are singled out by
    # Parquet statistics), not whole event_date partitions: at 10M events a week those are millions
    # of rows, and validating them took ~7 s an hour against ~0.3 s for the hour's own rows.
    # Re-attributed rows only had person_id re-resolved from identity_map, which is validated whole.
    entry = read_entry(paths, key)
    dates = sorted(set(entry.event_dates if entry else []) | set(result.event_dates))
    hours = sorted({key, *result.landing_partitions})
    frames = {
        SILVER_EVENTS_KEY: delta_io.read(paths.silver_events, SILVER_EVENTS, partitions=[("event_date", "in", dates)],
                                         filter=pc.field("_landing_partition").isin(hours))
        if dates else SILVER_EVENTS.empty_table(),
        SILVER_SESSIONS_KEY: delta_io.read(paths.silver_sessions, SILVER_SESSIONS,
                                           partitions=[("session_date", "in", dates)])
        if dates else SILVER_SESSIONS.empty_table(),
        SILVER_IDENTITY_KEY: delta_io.read(paths.silver_identity_map, SILVER_IDENTITY_MAP),
    }
    params = {"silver_events": {"planned_events": lake.plan().event_names}}
    for asset, suite in _SUITES.items():
        frame = frames[asset]
        if frame.num_rows == 0:
            yield dg.AssetCheckResult(asset_key=asset, check_name=f"gx_{suite}", passed=True,
                                      metadata={"rows_validated": 0})
            continue
        out = validate(frame, suite, parameters=params.get(suite))
        yield dg.AssetCheckResult(asset_key=asset, check_name=f"gx_{suite}", passed=out.success,
                                  severity=dg.AssetCheckSeverity.ERROR, description=out.summary(),
                                  metadata={"rows_validated": frame.num_rows,
                                            "event_dates": [d.isoformat() for d in dates][:31],
                                            "landing_hours": hours[:48]})

"""Silver assets: bronze events stitched to people (identity map), typed, and sessionized (a range of hours in
one build)."""

import dagster as dg

from lake.silver import SILVER_CHECKS, SilverGate, SilverResult, build_silver
from orchestration.automation import hourly_after_gates
from orchestration.bronze.assets import EVENTS as BRONZE_EVENTS
from orchestration.bronze.partitions import WRITER_POOL, hourly
from orchestration.hours import HourCheck, check_events, hourly_backfill, run_hours
from orchestration.resources import LakeResource
from orchestration.specs import hourly_delta_spec

__all__ = ["build_silver_hour", "SILVER_EVENTS_KEY", "SILVER_IDENTITY_KEY", "SILVER_SESSIONS_KEY"]

SILVER_EVENTS_KEY = dg.AssetKey(["silver", "events"])
SILVER_IDENTITY_KEY = dg.AssetKey(["silver", "identity_map"])
SILVER_SESSIONS_KEY = dg.AssetKey(["silver", "sessions"])
_SUITES = {SILVER_EVENTS_KEY: "silver_events", SILVER_IDENTITY_KEY: "silver_identity_map",
           SILVER_SESSIONS_KEY: "silver_sessions"}
_TABLES = {SILVER_EVENTS_KEY: "events", SILVER_IDENTITY_KEY: "identity_map", SILVER_SESSIONS_KEY: "sessions"}


def _spec(key: dg.AssetKey, description: str) -> dg.AssetSpec:
    # Built by the landing sensor's hourly_ingestion run with bronze; on its own when a bronze hour was built
    # without it (its bronze gates passed).
    return hourly_delta_spec(key, description, layer="silver", upstream=BRONZE_EVENTS,
                             automation_condition=hourly_after_gates())


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
                                   description=f"Great Expectations suite {suite} on the rows this run staged, "
                                   "audited before they were committed (events: per landing hour; sessions: the "
                                   "days it changes; identity_map: the links it upserts).")
                 for key, suite in _SUITES.items()],
    partitions_def=hourly,
    backfill_policy=hourly_backfill,
    pool=WRITER_POOL,  # one writer step at a time across machines, once the instance limits the pool
)
def build_silver_hour(context: dg.AssetExecutionContext, lake: LakeResource):
    """Bring silver up to date with bronze (incremental, exactly once; a range of hours in one build, in bounded
    steps), each step's rows audited before they are committed."""
    paths = lake.paths()
    keys = run_hours(context)
    result = build_silver(paths, landing_partitions=keys,
                          gate=SilverGate(planned_events=tuple(lake.plan().event_names)))
    summary = result.summary()
    context.log.info(f"silver after {keys[0]} .. {keys[-1]}: {summary}")
    for key in keys:
        for asset in _SUITES:
            context.add_asset_metadata({**summary, "partition": key}, asset_key=asset, partition_key=key)
    for asset in _SUITES:
        yield dg.MaterializeResult(asset_key=asset, metadata={"hours_in_run": len(keys)})

    # The verdicts were computed by the build on the staged frames, before anything was committed
    # (write-audit-publish, lake.silver.audit): only they are reported here.
    yield from check_events(context, _checks(result, keys))


def _checks(result: SilverResult, keys: list[str]) -> list[HourCheck]:
    """One verdict per silver check and hour: events per landing hour (the hours whose rows failed are
    held), sessions and identity_map for the run as a whole (their rows carry no landing hour)."""
    checks: list[HourCheck] = []
    stopped = sorted(result.held_hours)
    for asset, table in _TABLES.items():
        name = SILVER_CHECKS[table]
        gate = result.gates.get(name)
        for key in keys:
            if table == "events" and key in result.held_hours:
                passed, why = False, f"held, nothing of this hour published: {result.held_hours[key]}"
            elif table == "events" and stopped and key not in result.published_hours:
                passed, why = False, (f"not built: silver stopped at the held landing hour(s) {', '.join(stopped[:5])}"
                                      " and builds the later ones after them")
            elif gate is None:
                passed, why = True, f"{name}: nothing staged for this run"
            elif table == "events":  # published, so its rows passed (another hour's failure is not its own)
                passed, why = True, (gate.summary or "") if gate.passed else "silver_events: this hour's rows passed"
            else:
                passed, why = gate.passed, gate.summary or ""
            meta = {k: v for k, v in (gate.metadata if gate is not None else {}).items() if k != "failing_hours"}
            checks.append(HourCheck(asset, name, key, passed, description=why, metadata=meta))
    return checks



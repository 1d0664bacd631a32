"""Silver assets: bronze events stitched to people (identity map), typed, and sessionized (a range of hours in
one build)."""

import dagster as dg
import pyarrow.compute as pc

from expectations import validate
from lake import delta_io
from lake.ingest.audit import audit_hours, gx_auditor
from lake.ledger import read_entries, read_ledger
from lake.paths import LakePaths
from lake.schemas import SILVER_EVENTS, SILVER_IDENTITY_MAP, SILVER_SESSIONS
from lake.silver import build_silver
from orchestration.automation import hourly_after_gates
from orchestration.bronze.assets import EVENTS as BRONZE_EVENTS
from orchestration.bronze.partitions import hourly
from orchestration.hours import HourCheck, check_events, hourly_backfill, run_hours
from orchestration.resources import LakeResource
from orchestration.specs import hourly_delta_spec

__all__ = ["build_silver_hour", "SILVER_EVENTS_KEY", "SILVER_IDENTITY_KEY", "SILVER_SESSIONS_KEY"]

SILVER_EVENTS_KEY = dg.AssetKey(["silver", "events"])
SILVER_IDENTITY_KEY = dg.AssetKey(["silver", "identity_map"])
SILVER_SESSIONS_KEY = dg.AssetKey(["silver", "sessions"])
_SUITES = {SILVER_EVENTS_KEY: "silver_events", SILVER_IDENTITY_KEY: "silver_identity_map",
           SILVER_SESSIONS_KEY: "silver_sessions"}


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
                                   description=f"Great Expectations suite {suite} on the rows this run wrote "
                                   "(events: the rows it added; sessions: the days it touched; identity_map: all).")
                 for key, suite in _SUITES.items()],
    partitions_def=hourly,
    backfill_policy=hourly_backfill,
)
def build_silver_hour(context: dg.AssetExecutionContext, lake: LakeResource):
    """Bring silver up to date with bronze (incremental, exactly once; a range of hours in one build, in bounded
    steps), then gate what changed."""
    paths = lake.paths()
    keys = run_hours(context)
    result = build_silver(paths, landing_partitions=keys)
    summary = result.summary()
    context.log.info(f"silver after {keys[0]} .. {keys[-1]}: {summary}")
    for key in keys:
        for asset in _SUITES:
            context.add_asset_metadata({**summary, "partition": key}, asset_key=asset, partition_key=key)
    for asset in _SUITES:
        yield dg.MaterializeResult(asset_key=asset, metadata={"hours_in_run": len(keys)})

    # The events this run added (the landing hours it processed; their files are singled out by
    # Parquet statistics), not whole event_date partitions: at 10M events a week those are millions
    # of rows, and validating them took ~7 s an hour against ~0.3 s for the hour's own rows.
    # Re-attributed rows only had person_id re-resolved from identity_map, which is validated whole.
    entries = read_entries(paths, keys)
    dates = sorted({d for e in entries.values() for d in e.event_dates} | set(result.event_dates))
    hours = sorted({*keys, *result.landing_partitions})
    plan = lake.plan()
    verdicts: dict[dg.AssetKey, dict[str, tuple[bool, str | None, dict]]] = {}
    # silver/events: per hour (its rows carry their landing hour), in batches of whole hours of at most
    # GROWTHLAKE_SILVER_STEP_ROWS rows; the hours of a failing batch that GX names fail, the others pass.
    events_verdict: dict[str, tuple[bool, str | None, dict]] = {}
    outside: list[str] = []
    for batch in _hour_batches(paths, hours, dates):
        frame = delta_io.read(paths.silver_events, SILVER_EVENTS, partitions=[("event_date", "in", batch[1])],
                              filter=pc.field("_landing_partition").isin(batch[0]))
        if frame.num_rows == 0:
            continue
        audit = audit_hours(gx_auditor, "silver_events", frame, column="_landing_partition",
                            parameters_for=lambda _hours: {"planned_events": plan.event_names})
        meta = {"rows_validated": frame.num_rows, "landing_hours_validated": len(batch[0])}
        for hour in batch[0]:
            failed = audit.failing.get(hour)
            events_verdict[hour] = ((False, failed.summary(), meta) if failed is not None
                                    else (True, audit.outcome.summary() if audit.outcome.success else
                                          "silver_events: passed — no row of this hour was unexpected", meta))
        outside += [h for h in audit.failing if h not in keys]
    verdicts[SILVER_EVENTS_KEY] = {
        key: (events_verdict.get(key, (True, None, {"rows_validated": 0})) if not outside else
              (False, f"silver_events: rows of landing hour(s) {', '.join(sorted(outside)[:5])}, built by this run, "
                      "failed the suite", {}))
        for key in keys}
    frames = {
        SILVER_SESSIONS_KEY: delta_io.read(paths.silver_sessions, SILVER_SESSIONS,
                                           partitions=[("session_date", "in", dates)])
        if dates else SILVER_SESSIONS.empty_table(),
        SILVER_IDENTITY_KEY: delta_io.read(paths.silver_identity_map, SILVER_IDENTITY_MAP),
    }
    for asset, frame in frames.items():
        # Sessions and the identity map carry no landing hour: the run's build is judged as a whole.
        if frame.num_rows == 0:
            verdict: tuple[bool, str | None, dict] = (True, None, {"rows_validated": 0})
        else:
            out = validate(frame, _SUITES[asset])
            verdict = (out.success, out.summary(), {"rows_validated": frame.num_rows,
                                                    "event_dates": [d.isoformat() for d in dates][:31]})
        verdicts[asset] = dict.fromkeys(keys, verdict)
    checks = [HourCheck(asset, f"gx_{_SUITES[asset]}", key, passed, description=description, metadata=meta)
              for asset in _SUITES for key, (passed, description, meta) in verdicts[asset].items()]
    yield from check_events(context, checks)


def _hour_batches(paths: LakePaths, hours: list[str], dates: list) -> list[tuple[list[str], list]]:
    """The landing hours as batches of at most ``GROWTHLAKE_SILVER_STEP_ROWS`` bronze rows (by the ledger),
    each with the event dates its rows may carry."""
    ledger = {r["landing_partition"]: (r["bronze_rows"], list(r["event_dates"] or []))
              for r in read_ledger(paths, hours).to_pylist()}
    limit = paths.settings.silver_step_rows
    batches: list[tuple[list[str], list]] = []
    total = 0
    for hour in hours:
        rows, hour_dates = ledger.get(hour, (0, dates))
        if not batches or (total and total + rows > limit):
            batches.append(([], []))
            total = 0
        batches[-1][0].append(hour)
        batches[-1][1].extend(d for d in hour_dates if d not in batches[-1][1])
        total += rows
    return [(hs, sorted(ds)) for hs, ds in batches if ds]

"""Bronze checks: the ledger must reconcile against the landing files and the tables."""

import dagster as dg

from lake.ledger import read_ledger, verify_partition
from orchestration.bronze.assets import EVENTS, LEDGER
from orchestration.bronze.partitions import hourly
from orchestration.resources import LakeResource

__all__ = ["DISTRIBUTION_DRIFT", "SCHEMA_DRIFT", "landing_drift", "ledger_reconciles", "volume_within_history"]


@dg.asset_check(
    asset=LEDGER,
    blocking=True,
    partitions_def=hourly,
    description="Recount the landing files and the tables: landed = bronze + quarantined + "
    "consent-dropped + duplicates, no doubled event_id, nothing held (plus GX suite ingestion_ledger).",
)
def ledger_reconciles(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    from expectations import validate

    paths = lake.paths()
    key = context.partition_key
    rec = verify_partition(paths, key)
    gx = validate(
        read_ledger(paths, [key]).select(
            [
                "landing_partition",
                "lines_landed",
                "bronze_rows",
                "quarantined",
                "consent_dropped",
                "duplicates_dropped",
                "held_for_audit",
                "reconciled",
            ]
        ),
        "ingestion_ledger",
    )
    passed = rec.ok and gx.success
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=rec.detail if not rec.ok else (gx.summary() if not gx.success else "reconciled"),
        metadata={**rec.figures, "gx_ingestion_ledger": gx.success},
    )


@dg.asset_check(
    asset=EVENTS,  # silver reads bronze/events: a failure here stops it
    blocking=True,
    partitions_def=hourly,
    description="Lines landed this hour against the same weekday and hour of the weeks before (robust z-score "
    "on the median absolute deviation; expectations/anomaly.yaml `volume`): a collector outage or a flood.",
)
def volume_within_history(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    from datetime import timedelta

    from expectations.anomaly import load_config, volume_verdict
    from lake.ingest import parse_partition_key

    paths = lake.paths()
    key = context.partition_key
    config = load_config()["volume"]
    hour = parse_partition_key(key)
    past = [(hour - timedelta(weeks=w)).strftime("%Y-%m-%d-%H:00") for w in range(1, int(config["weeks"]) + 1)]
    rows = {r["landing_partition"]: r["lines_landed"] for r in read_ledger(paths, [key, *past]).to_pylist()}
    verdict = volume_verdict(rows.get(key, 0), [rows[k] for k in past if k in rows], **config)
    return dg.AssetCheckResult(passed=verdict.passed, severity=dg.AssetCheckSeverity.ERROR,
                               description=verdict.note, metadata=verdict.to_metadata())


SCHEMA_DRIFT = "schema_drift_at_landing"
DISTRIBUTION_DRIFT = "distribution_within_history"


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(SCHEMA_DRIFT, asset=EVENTS, blocking=True, partitions_def=hourly,
                          description="Properties landed this hour that the tracking plan does not know (on a share "
                          "of an event's lines), or planned ones gone missing against the previous days "
                          "(expectations/anomaly.yaml `schema_drift`)."),
        dg.AssetCheckSpec(DISTRIBUTION_DRIFT, asset=EVENTS, blocking=True, partitions_def=hourly,
                          description="Mix of key columns (devices and browsers per person, payment amounts) this "
                          "hour against the same hour of the previous days, by PSI and a chi-square test "
                          "(expectations/anomaly.yaml `distribution_drift`)."),
    ],
)
def landing_drift(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    """Profile the hour once (lake/profiles) and judge it for schema and distribution drift."""
    from datetime import timedelta

    from expectations.anomaly import distribution_verdict, load_config, schema_drift_verdict
    from lake.ingest import hour_keys, parse_partition_key, partition_key
    from lake.profiles import Profile, hour_profile, profile_hours

    paths = lake.paths()
    key = context.partition_key
    config = load_config()
    schema_cfg, dist_cfg = config["schema_drift"], config["distribution_drift"]
    columns = dist_cfg["columns"]
    hour = parse_partition_key(key)
    now = hour_profile(paths, key, columns=columns)
    # Schema: every hour of the previous days. Distribution: the same time of day on each previous day
    # (a product's audience changes over the day: mobile in the evening, desktop at work). One read.
    schema_keys = hour_keys(hour - timedelta(days=int(schema_cfg["history_days"])), hour)
    around = int(dist_cfg["history_hours_around"])
    same_time = [partition_key(hour - timedelta(days=d, hours=h))
                 for d in range(1, int(dist_cfg["history_days"]) + 1) for h in range(-around, around + 1)]
    hours = profile_hours(paths, [*schema_keys, *same_time], columns=columns)
    history = Profile.total(hours[k] for k in schema_keys if k in hours)
    same_hour = Profile.total(hours[k] for k in same_time if k in hours)

    plan = lake.plan()
    planned = {name: set(spec.properties) for name, spec in plan.events.items()}
    schema = schema_drift_verdict(now.dimension("event_lines"), now.dimension("property"), planned,
                                  history.dimension("event_lines"), history.dimension("property"), **schema_cfg)
    dist = distribution_verdict(now.columns(), same_hour.columns(), n_history_hours=len(same_hour.hours), **dist_cfg)
    for name, verdict, baseline in ((SCHEMA_DRIFT, schema, history), (DISTRIBUTION_DRIFT, dist, same_hour)):
        yield dg.AssetCheckResult(asset_key=EVENTS, check_name=name, passed=verdict.passed,
                                  severity=dg.AssetCheckSeverity.ERROR, description=verdict.note,
                                  metadata={**verdict.to_metadata(), "history_hours": len(baseline.hours)})

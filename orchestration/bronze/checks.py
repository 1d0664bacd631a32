"""Bronze checks: the ledger must reconcile against the landing files and the tables."""

import dagster as dg

from lake.ledger import read_ledger, verify_partition
from orchestration.bronze.assets import EVENTS, LEDGER
from orchestration.bronze.partitions import hourly
from orchestration.resources import LakeResource

__all__ = ["ledger_reconciles", "volume_within_history"]


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


VOLUME_WEEKS = 8  # same weekday and hour, this many weeks back


@dg.asset_check(
    asset=EVENTS,  # silver reads bronze/events: a failure here stops it
    blocking=True,
    partitions_def=hourly,
    description=f"Lines landed this hour against the same weekday and hour of the last {VOLUME_WEEKS} weeks "
    "(robust z-score on the median absolute deviation): a collector outage or a flood stops silver.",
)
def volume_within_history(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    from datetime import timedelta

    from expectations.anomaly import volume_verdict
    from lake.ingest import parse_partition_key

    paths = lake.paths()
    key = context.partition_key
    hour = parse_partition_key(key)
    past = [(hour - timedelta(weeks=w)).strftime("%Y-%m-%d-%H:00") for w in range(1, VOLUME_WEEKS + 1)]
    rows = {r["landing_partition"]: r["lines_landed"] for r in read_ledger(paths, [key, *past]).to_pylist()}
    verdict = volume_verdict(rows.get(key, 0), [rows[k] for k in past if k in rows])
    return dg.AssetCheckResult(passed=verdict.passed, severity=dg.AssetCheckSeverity.ERROR,
                               description=verdict.note, metadata=verdict.to_metadata())

"""Bronze checks: the ledger must reconcile against the landing files and the tables."""

import dagster as dg

from lake.ledger import read_ledger, verify_partition
from orchestration.bronze.assets import LEDGER
from orchestration.bronze.partitions import hourly
from orchestration.resources import LakeResource

__all__ = ["ledger_reconciles"]


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

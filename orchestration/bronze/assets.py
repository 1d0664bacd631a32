"""Bronze assets: each landing hour ingested into events, quarantine and the ledger."""

import dagster as dg

from lake.ingest import ingest_partition
from orchestration.bronze.partitions import hourly
from orchestration.freshness import freshness
from orchestration.resources import LakeResource
from orchestration.specs import hourly_delta_spec

__all__ = ["landing_events", "ingest_landing_hour", "EVENTS", "QUARANTINE", "LEDGER", "GX_EVENTS", "GX_QUARANTINE"]

EVENTS = dg.AssetKey(["bronze", "events"])
QUARANTINE = dg.AssetKey(["bronze", "quarantine"])
LEDGER = dg.AssetKey(["bronze", "ingestion_ledger"])
GX_EVENTS = "gx_bronze_events"
GX_QUARANTINE = "gx_bronze_quarantine"

landing_events = dg.AssetSpec(
    ["landing", "events"],
    description="Raw JSONL batches delivered by event collectors, one folder per UTC hour.",
    group_name="landing",
    partitions_def=hourly,
    kinds={"jsonl"},
    freshness_policy=freshness("landing"),
    metadata={"layout": "landing/events/date=YYYY-MM-DD/hour=HH/<batch>.jsonl[.gz]"},
)


def _spec(key: dg.AssetKey, description: str) -> dg.AssetSpec:
    return hourly_delta_spec(key, description, layer="bronze", upstream=landing_events)


@dg.multi_asset(
    name="ingest_landing_hour",
    specs=[
        _spec(EVENTS, "Contract-valid, pseudonymized, consented, deduplicated events (Delta, by event_date)."),
        _spec(QUARANTINE, "Every rejected landed line, PII masked, with its violation, file and line (Delta)."),
        _spec(LEDGER, "Per landing hour: lines landed = bronze + quarantined + consent-dropped + duplicates."),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            GX_EVENTS,
            asset=EVENTS,
            blocking=True,
            partitions_def=hourly,
            description="Great Expectations suite bronze_events, run on the batch BEFORE it is published.",
        ),
        dg.AssetCheckSpec(
            GX_QUARANTINE,
            asset=QUARANTINE,
            blocking=True,
            partitions_def=hourly,
            description="Great Expectations suite bronze_quarantine (PII masked), run before publishing.",
        ),
    ],
    partitions_def=hourly,
)
def ingest_landing_hour(context: dg.AssetExecutionContext, lake: LakeResource):
    """Ingest one landing hour exactly once (write-audit-publish: gates run before anything is visible)."""
    paths = lake.paths()
    key = context.partition_key
    result = ingest_partition(paths, key, plan=lake.plan(), masker=lake.masker())
    led = result.ledger
    context.log.info(f"{key}: {led.summary()} quarantined_by_reason={led.quarantined_by_reason}")
    common = {"partition": key, "published": result.published, "plan_version": led.plan_version}
    yield dg.MaterializeResult(
        asset_key=EVENTS,
        metadata={
            **common,
            "path": paths.bronze_events,
            "rows_appended": result.bronze_appended,
            "partition_rows": led.bronze_rows,
            "event_dates": [d.isoformat() for d in led.event_dates],
            "dagster/row_count": led.bronze_rows,
            "quarantine_rate": round(led.quarantined / led.lines_landed, 6) if led.lines_landed else 0.0,
            "reconciled": led.reconciled,
            # lines normalized one at a time by the reference (quarantined, consent_updated, unusual forms)
            "python_fallback_lines": result.python_fallback_lines,
        },
    )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE,
        metadata={
            **common,
            "path": paths.bronze_quarantine,
            "rows_appended": result.quarantine_appended,
            "quarantined_by_reason": led.quarantined_by_reason,
            "dagster/row_count": led.quarantined,
        },
    )
    yield dg.MaterializeResult(asset_key=LEDGER, metadata={**common, "path": paths.ingestion_ledger, **led.summary()})
    for check, asset in ((GX_EVENTS, EVENTS), (GX_QUARANTINE, QUARANTINE)):
        suite = "bronze_events" if asset == EVENTS else "bronze_quarantine"
        gate = result.gates.get(suite)
        if gate is None:
            yield dg.AssetCheckResult(
                asset_key=asset,
                check_name=check,
                passed=True,
                metadata={"rows_validated": 0, "note": "no new rows to publish"},
            )
            continue
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name=check,
            passed=gate["success"],
            severity=dg.AssetCheckSeverity.ERROR,
            description=gate["summary"],
            metadata={
                **{k: v for k, v in gate["metadata"].items() if isinstance(v, (int, float, str, bool))},
                "held_at": result.held_at or "",
            },
        )

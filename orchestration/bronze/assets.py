"""Bronze assets: landing hours ingested into events, quarantine and the ledger (a range in one pass)."""

import dagster as dg

from lake.ingest import IngestionResult, ingest_range
from orchestration.bronze.partitions import WRITER_POOL, hourly
from orchestration.freshness import freshness
from orchestration.hours import HourCheck, check_events, hourly_backfill, run_hours
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
    backfill_policy=hourly_backfill,
    pool=WRITER_POOL,  # one writer step at a time across machines, once the instance limits the pool
)
def ingest_landing_hour(context: dg.AssetExecutionContext, lake: LakeResource):
    """Ingest landing hours exactly once, a range in one pass (write-audit-publish: gates run before anything
    is visible; an hour that fails them is held, the others are published)."""
    paths = lake.paths()
    keys = run_hours(context)
    results = ingest_range(paths, keys, plan=lake.plan(), masker=lake.masker())
    held = [r.partition for r in results if not r.published]
    context.log.info(f"{keys[0]} .. {keys[-1]}: {len(results)} hour(s) in {results[0].elapsed_s:.2f}s, "
                     f"{results[0].validations} validation(s); held: {', '.join(held) or 'none'}")
    for r in results:
        led = r.ledger
        if not r.published:
            context.log.warning(f"{r.partition} held at {r.held_at}: {led.gate_summary}")
        common = {"partition": r.partition, "published": r.published, "plan_version": led.plan_version,
                  "hours_in_pass": r.hours_in_pass}
        context.add_asset_metadata({
            **common,
            "path": paths.bronze_events,
            "rows_appended": r.bronze_appended,
            "partition_rows": led.bronze_rows,
            "event_dates": [d.isoformat() for d in led.event_dates],
            "dagster/row_count": led.bronze_rows,
            "quarantine_rate": round(led.quarantined / led.lines_landed, 6) if led.lines_landed else 0.0,
            "reconciled": led.reconciled,
        }, asset_key=EVENTS, partition_key=r.partition)
        context.add_asset_metadata({
            **common,
            "path": paths.bronze_quarantine,
            "rows_appended": r.quarantine_appended,
            "quarantined_by_reason": led.quarantined_by_reason,
            "dagster/row_count": led.quarantined,
        }, asset_key=QUARANTINE, partition_key=r.partition)
        context.add_asset_metadata({**common, "path": paths.ingestion_ledger, **led.summary()}, asset_key=LEDGER,
                                   partition_key=r.partition)
    span: dict[str, str | int] = {"hours_in_run": len(keys), "first_hour": keys[0], "last_hour": keys[-1]}
    for asset in (EVENTS, QUARANTINE, LEDGER):
        yield dg.MaterializeResult(asset_key=asset, metadata=span if asset != EVENTS else {
            **span,
            # lines normalized one at a time by the reference (quarantined, consent_updated, unusual forms)
            "python_fallback_lines": _fallback_lines(results)})
    yield from check_events(context, _gate_checks(results))


def _fallback_lines(results: list[IngestionResult]) -> int:
    """The run's lines left to the per-line normalizer: each pass's figure once (its hours share it)."""
    total, i = 0, 0
    while i < len(results):
        total += results[i].python_fallback_lines
        i += max(1, results[i].hours_in_pass)
    return total


def _gate_checks(results: list[IngestionResult]) -> list[HourCheck]:
    """Per hour, the verdict of the two suites on its rows (an hour without new rows passes)."""
    checks = []
    for r in results:
        for check, asset, suite in ((GX_EVENTS, EVENTS, "bronze_events"),
                                    (GX_QUARANTINE, QUARANTINE, "bronze_quarantine")):
            gate = r.gates.get(suite)
            if gate is None:
                checks.append(HourCheck(asset, check, r.partition, True,
                                        metadata={"rows_validated": 0, "note": "no new rows to publish"}))
                continue
            scalar = {k: v for k, v in gate["metadata"].items() if isinstance(v, (int, float, str, bool))}
            checks.append(HourCheck(asset, check, r.partition, gate["success"], description=gate["summary"],
                                    metadata={**scalar, "held_at": r.held_at or ""}))
    return checks

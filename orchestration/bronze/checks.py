"""Bronze checks, per hour of a run: the ledger must reconcile against the landing files and the tables, and
the hour must look like its history (volume, schema, distribution, quarantine rate)."""

import dagster as dg

from lake.ledger import read_ledger, verify_partitions
from orchestration.bronze.assets import EVENTS, LEDGER
from orchestration.bronze.partitions import hourly
from orchestration.hours import HourCheck, check_events, run_hours
from orchestration.resources import LakeResource

__all__ = ["DISTRIBUTION_DRIFT", "QUARANTINE_RATE", "SCHEMA_DRIFT", "landing_drift",
           "ledger_reconciles", "volume_within_history"]


@dg.asset_check(
    asset=LEDGER,
    blocking=True,
    partitions_def=hourly,
    description="Recount the landing files and the tables: landed = bronze + quarantined + "
    "consent-dropped + duplicates, no doubled event_id, nothing held (plus GX suite ingestion_ledger).",
)
def ledger_reconciles(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    """Per hour of the run: recount it (the tables are read once for all hours) and validate its ledger
    row (one GX validation for all rows; on failure the hours whose rows GX names are judged alone)."""
    from lake.ingest.audit import audit_hours, gx_auditor

    paths = lake.paths()
    keys = run_hours(context)
    recs = verify_partitions(paths, keys)
    rows = read_ledger(paths, keys).select(
        ["landing_partition", "lines_landed", "bronze_rows", "quarantined", "consent_dropped", "duplicates_dropped",
         "held_for_audit", "reconciled"])
    failing = (audit_hours(gx_auditor, "ingestion_ledger", rows, column="landing_partition",
                           parameters_for=lambda hours: {}).failing if rows.num_rows else {})
    checks = []
    for key in keys:
        rec = recs[key]
        gx = failing.get(key)
        checks.append(HourCheck(
            LEDGER, "ledger_reconciles", key, rec.ok and gx is None,
            description=rec.detail if not rec.ok else (gx.summary() if gx is not None else "reconciled"),
            metadata={**rec.figures, "gx_ingestion_ledger": gx is None}))
    yield from check_events(context, checks)


@dg.asset_check(
    asset=EVENTS,  # silver reads bronze/events: a failure here stops it
    blocking=True,
    partitions_def=hourly,
    description="Lines landed this hour against the same weekday and hour of the weeks before (robust z-score "
    "on the median absolute deviation; expectations/anomaly.yaml `volume`): a collector outage or a flood.",
)
def volume_within_history(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    """Per hour of the run, its volume against its own history (one read of the ledger for all)."""
    from datetime import timedelta

    from expectations.anomaly import load_config, volume_verdict
    from lake.ingest import parse_partition_key

    paths = lake.paths()
    keys = run_hours(context)
    config = load_config()["volume"]
    weeks = range(1, int(config["weeks"]) + 1)
    past = {key: [(parse_partition_key(key) - timedelta(weeks=w)).strftime("%Y-%m-%d-%H:00") for w in weeks]
            for key in keys}
    wanted = sorted({*keys, *(k for ks in past.values() for k in ks)})
    rows = {r["landing_partition"]: r["lines_landed"] for r in read_ledger(paths, wanted).to_pylist()}
    checks = []
    for key in keys:
        verdict = volume_verdict(rows.get(key, 0), [rows[k] for k in past[key] if k in rows], **config)
        checks.append(HourCheck(EVENTS, "volume_within_history", key, verdict.passed, description=verdict.note,
                                metadata=verdict.to_metadata()))
    yield from check_events(context, checks)


SCHEMA_DRIFT = "schema_drift_at_landing"
DISTRIBUTION_DRIFT = "distribution_within_history"
QUARANTINE_RATE = "quarantine_rate_within_history"


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
        dg.AssetCheckSpec(QUARANTINE_RATE, asset=EVENTS, blocking=True, partitions_def=hourly,
                          description="Share of the hour's lines quarantined — overall, per planned event and per "
                          "source (landing file family) — against the same hour of the previous days (median + robust "
                          "band, binomial test; expectations/anomaly.yaml `quarantine_rate`): a broken client "
                          "release. Names the top violations."),
    ],
)
def landing_drift(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    """Profile the run's hours once (lake/profiles: one pass for all) and judge each for schema drift,
    distribution drift and its quarantine rate against its own history (expectations/landing_gates)."""
    from expectations.anomaly import load_config
    from expectations.landing_gates import hours_needed, judge_landing_hour
    from lake.profiles import profile_hours

    paths = lake.paths()
    keys = run_hours(context)
    config = load_config()
    columns = config["distribution_drift"]["columns"]
    # Schema: every hour of the previous days. Distribution and quarantine rate: the same time of day on
    # each previous day (a product's audience changes over the day: mobile in the evening). One read.
    baselines = hours_needed(keys, config)
    rate_keys = {k for b in baselines.values() for k in b.rate_time}
    wanted = {*keys, *(k for b in baselines.values() for k in b.all())}
    hours = profile_hours(paths, wanted, columns=columns, refresh=keys)
    # Profiles stored before the quarantine-rate gate lack its counts: recompute those once.
    stale = sorted(k for k in rate_keys if k in hours and hours[k].dimension("event_lines")
                   and not hours[k].dimension("source_lines"))
    if stale:
        hours.update(profile_hours(paths, stale, columns=columns, refresh=stale))
    ledger = {r["landing_partition"]: (r["quarantined"], r["lines_landed"])
              for r in read_ledger(paths, sorted({*keys, *rate_keys})).to_pylist()}

    planned = {name: set(spec.properties) for name, spec in lake.plan().events.items()}
    checks = []
    for key in keys:
        v = judge_landing_hour(key, hours=hours, ledger=ledger, planned=planned, config=config,
                               baselines=baselines[key])
        for name, verdict, n_history in ((SCHEMA_DRIFT, v.schema, v.schema_history_hours),
                                         (DISTRIBUTION_DRIFT, v.distribution, v.distribution_history_hours)):
            checks.append(HourCheck(EVENTS, name, key, verdict.passed, description=verdict.note,
                                    metadata={**verdict.to_metadata(), "history_hours": n_history}))
        checks.append(HourCheck(EVENTS, QUARANTINE_RATE, key, v.quarantine_rate.passed,
                                description=v.quarantine_rate.note, metadata=v.quarantine_rate.to_metadata()))
    yield from check_events(context, checks)


"""Record every step's materializations and gate results in the lake's trust tables (lake/trust).

A success hook and a failure hook on every job (``TRUST_HOOKS``), so scheduled runs, sensor runs
and ``growthlake run`` all leave the same record: per asset and step a row of
``observability/asset_runs`` (rows, freshness lag, quarantine rate, reconciliation; the gates are
joined in when read), and per check evaluation a row of ``observability/gate_evaluations`` with the
data dates it covers; each failed gate of error severity raises one ``gate_failed`` alert
(``lake.alerts``: a row, a log line, the webhook). Hooks run in the step's process right after it, for in-process and
multiprocess executors alike. The hooks are on the assets as well (``build_definitions``), so a run of
Dagster's implicit asset job — the automation sensor's, the UI's "Materialize" — records the same.
"""

import datetime as dt

import dagster as dg

from lake import delta_io
from lake.alerts import gate_alerts, raise_alerts
from lake.ingest import parse_partition_key
from lake.ledger import read_entries
from lake.paths import LakePaths
from lake.trust import data_dates_of_partition, record_asset_runs, record_gate_evaluations
from orchestration.freshness import freshness
from orchestration.gates import as_check_result
from orchestration.hours import HOUR_RANGE_TAGS
from orchestration.resources import LakeResource

__all__ = ["DAILY_TRUST_CHECK", "TRUST_HOOKS", "daily_trust_consistent", "daily_trust_evaluation",
           "data_trust_daily", "observe_data_trust", "record_trust_on_failure",
           "record_trust_on_success"]

data_trust_daily = dg.AssetSpec(
    ["observability", "data_trust_daily"],
    description="Per date: may decisions use its data (no failed gate on it, silver caught up with its end). "
    "Rewritten from the gate log before every warehouse build; marts.fct_daily_oec joins it, the loops apply it.",
    group_name="observability",
    kinds={"delta"},
    freshness_policy=freshness("warehouse"),  # rewritten by every warehouse build
    metadata={"path": "delta/observability/data_trust_daily", "rule": "lake.trust.untrusted_days"},
)



def observe_data_trust(paths: LakePaths) -> dg.AssetObservation | None:
    """The observation of ``observability/data_trust_daily`` (None while the table does not exist): its Delta
    version is its data version, its last commit time ``dagster/last_updated_timestamp`` (what its freshness
    is measured from). ``freshness_sla_sensor`` reports it whenever the version changed."""
    table = delta_io.open_table(paths.data_trust_daily)
    if table is None:
        return None
    (last,) = table.history(1)
    committed = dt.datetime.fromtimestamp(last["timestamp"] / 1000, tz=dt.UTC)
    return dg.AssetObservation(
        asset_key=data_trust_daily.key, tags={"dagster/data_version": str(table.version())},
        metadata={"delta_version": table.version(), "committed_at": committed.isoformat(timespec="seconds"),
                  "dagster/last_updated_timestamp": dg.MetadataValue.timestamp(committed.timestamp())})


_EVENTS = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}


def _value(metadata: dict, key: str):
    entry = metadata.get(key)
    return getattr(entry, "value", entry)


def _window_end(partition: str | None) -> dt.datetime | None:
    if not partition:
        return None
    if len(partition) == 10:  # daily
        return dt.datetime.combine(dt.date.fromisoformat(partition) + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return parse_partition_key(partition) + dt.timedelta(hours=1)


def _run_partitions(context: dg.HookContext) -> list[str | None]:
    """The partitions of the hook's run: its partition, every hour of its range, or [None]."""
    run = context.instance.get_run_by_id(context.run_id)
    assert run is not None  # the hook runs inside it
    if run.tags.get("dagster/partition"):
        return [run.tags["dagster/partition"]]
    start, end = (run.tags.get(tag) for tag in HOUR_RANGE_TAGS)
    if start and end and len(start) > 10:  # a range of hours
        from lake.ingest import hour_keys

        return list(hour_keys(parse_partition_key(start), parse_partition_key(end) + dt.timedelta(hours=1)))
    return [start] if start else [None]


_READ: dict[str, tuple[str | None, list]] = {}  # run id -> (cursor, records read so far), in this process


def _run_records(instance: dg.DagsterInstance, run_id: str) -> list:
    """The run's materializations and check evaluations, read once per process: each hook of the run reads
    only what was logged since the previous one (a ranged run logs thousands, one per hour and asset)."""
    cursor, records = _READ.get(run_id, (None, []))
    while True:
        page = instance.get_records_for_run(run_id, cursor=cursor, of_type=_EVENTS, limit=5000)
        records = records + [r.event_log_entry for r in page.records]
        cursor = page.cursor
        if not page.has_more:
            break
    for stale in [k for k in _READ if k != run_id]:
        del _READ[stale]
    _READ[run_id] = (cursor, records)
    return records


def _record(context: dg.HookContext, status: str) -> None:
    paths = context.resources.lake.paths()
    now = dt.datetime.now(dt.UTC)
    records = [r for r in _run_records(context.instance, context.run_id)
               if r.step_key == context.step_key and r.dagster_event is not None]
    failed_step = status == "failed" and not any(
        r.dagster_event is not None and r.dagster_event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
        for r in records)
    partitions: set[str] = set()
    for record in records:
        event = record.dagster_event
        assert event is not None
        data = (event.asset_check_evaluation_data if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
                else event.materialization)
        partition = getattr(data, "partition", None)
        if partition:
            partitions.add(partition)
    run_partitions = _run_partitions(context) if failed_step else []
    partitions |= {p for p in run_partitions if p}
    # The ledger says which dates an hour's data carries: one read for every hour of the step.
    hourly = sorted(p for p in partitions if len(p) > 10)
    entries = read_entries(paths, hourly) if hourly else {}
    dates_cache: dict[str | None, list[dt.date]] = {}

    def data_dates(partition: str | None, metadata: dict) -> list[dt.date]:
        scoped = _value(metadata, "data_dates")  # a check may scope itself (e.g. the OEC day it judged)
        if scoped:
            return sorted({dt.date.fromisoformat(str(d)) for d in scoped})
        if partition not in dates_cache:
            entry = entries.get(partition) if partition is not None else None
            dates_cache[partition] = data_dates_of_partition(partition, entry.event_dates if entry else ())
        return dates_cache[partition]

    gates, runs = [], {}
    for record in records:
        event = record.dagster_event
        assert event is not None  # records without one are filtered out above
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.asset_check_evaluation_data  # Dagster's typed views of event_specific_data
            partition = getattr(data, "partition", None)
            gates.append({
                "evaluated_at": now, "run_id": context.run_id, "asset": data.asset_key.to_user_string(),
                "partition": partition, "gate": data.check_name, "passed": bool(data.passed),
                "severity": getattr(data.severity, "value", None), "blocking": bool(data.blocking),
                "description": (data.description or "")[:2000],
                "data_dates": data_dates(partition, dict(data.metadata or {})), "source": "dagster",
            })
        else:
            mat = event.materialization
            meta = dict(mat.metadata or {})
            end = _window_end(mat.partition)
            rows = _value(meta, "dagster/row_count")
            runs[(mat.asset_key.to_user_string(), mat.partition)] = {
                "recorded_at": now, "run_id": context.run_id, "job": context.job_name, "step": context.step_key,
                "asset": mat.asset_key.to_user_string(), "partition": mat.partition, "status": "materialized",
                "rows": int(rows) if rows is not None else None,
                "freshness_lag_s": (now - end).total_seconds() if end else None,
                "quarantine_rate": _value(meta, "quarantine_rate"), "reconciled": _value(meta, "reconciled"),
                "data_dates": data_dates(mat.partition, meta),
            }
    if failed_step:
        # The step raised before materializing (e.g. a guard refused unaudited input): one row per
        # partition of the run, named after the step's op (the assets it would have produced are not
        # known to a hook).
        for partition in run_partitions:
            runs[(context.op.name, partition)] = {
                "recorded_at": now, "run_id": context.run_id, "job": context.job_name, "step": context.step_key,
                "asset": context.op.name, "partition": partition, "status": "failed",
                "data_dates": data_dates(partition, {}), "error": str(context.op_exception)[:2000]}
    record_gate_evaluations(paths, gates)
    record_asset_runs(paths, list(runs.values()))
    # A failed gate is heard: one alert per failed evaluation (the run id makes a re-read of it a no-op).
    raise_alerts(paths, gate_alerts(gates, raised_at=now))


@dg.success_hook(required_resource_keys={"lake"})
def record_trust_on_success(context: dg.HookContext) -> None:
    _record(context, "succeeded")


@dg.failure_hook(required_resource_keys={"lake"})
def record_trust_on_failure(context: dg.HookContext) -> None:
    _record(context, "failed")


TRUST_HOOKS = {record_trust_on_success, record_trust_on_failure}


DAILY_TRUST_CHECK = "daily_trust_consistent"


def daily_trust_evaluation(paths: LakePaths) -> dg.AssetCheckEvaluation:
    """The verdict of :func:`lake.trust.verify_daily_trust` as a check evaluation of the trust table (reported
    by ``freshness_sla_sensor`` whenever it observes a new version, and by the check when run)."""
    from lake.trust import verify_daily_trust

    passed, description, figures = verify_daily_trust(paths)
    return dg.AssetCheckEvaluation(asset_key=data_trust_daily.key, check_name=DAILY_TRUST_CHECK, passed=passed,
                                   description=description, metadata=figures,
                                   severity=dg.AssetCheckSeverity.ERROR)


@dg.asset_check(asset=data_trust_daily.key, name=DAILY_TRUST_CHECK, blocking=True,
                description="One row per date; a date is trusted exactly when no reason stands against it, and "
                "never with failed gates. Evaluated by freshness_sla_sensor at every new version of the table "
                "(it is written by the warehouse build, outside this asset's own runs), and on demand.")
def daily_trust_consistent(lake: LakeResource) -> dg.AssetCheckResult:
    return as_check_result(daily_trust_evaluation(lake.paths()))

"""Alerts from Dagster: freshness SLA breaches and failed runs (failed gates: ``orchestration.trust``).

``dagster dev`` shows each asset's FreshnessPolicy; ``freshness_sla_sensor`` (running by default) turns a
breach of ``orchestration.freshness.SLAS`` into a row of ``$ROOT/delta/observability/alerts``, a WARNING log
line and a notification (``lake.alerts``). An asset's last update is its latest materialization or
observation (``landing/events``: the landing sensor's, ``observability/data_trust_daily``: this sensor's own);
an asset never updated breaches once its SLA has passed since the sensor first saw it.
``run_failure_alert_sensor`` does the same for a run that failed:
when a gate failed in it, the gate's own alert (the trust hooks raise it too, with the same id) is that
failure's one alert; otherwise one alert for the run.
``growthlake run`` raises the same run alerts itself (:func:`alert_failed_runs`), as its runs execute in
process, where no sensor sees them unless a daemon runs; the alert id is the same either way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import cast

import dagster as dg

from lake.alerts import FRESHNESS, RUN_FAILED, Alert, Severity, gate_alerts, raise_alerts
from lake.paths import LakePaths
from orchestration.freshness import SLAS
from orchestration.hours import HOUR_RANGE_TAGS
from orchestration.resources import LakeResource
from orchestration.trust import daily_trust_evaluation, observe_data_trust

__all__ = ["alert_failed_runs", "evaluate_freshness", "failed_run_alerts", "freshness_sla_sensor", "layer_of",
           "run_failed_alert", "run_failure_alert_sensor"]

KIND = FRESHNESS
# dbt groups without an SLA of their own: both are built by the nightly warehouse job
_GROUP_TO_LAYER = {"staging": "warehouse", "intermediate": "warehouse"}


def layer_of(group_name: str | None) -> str | None:
    """The SLAS layer of an asset group (None when the group has no declared SLA)."""
    layer = _GROUP_TO_LAYER.get(group_name or "", group_name)
    return layer if layer in SLAS else None


def _asset_graph(source):
    if isinstance(source, dg.Definitions):
        return source.get_repository_def().asset_graph
    if isinstance(source, dg.RepositoryDefinition):
        return source.asset_graph
    return source  # already an asset graph


def _policy_windows(policy) -> tuple[timedelta, timedelta] | None:
    warn, fail = getattr(policy, "warn_window", None), getattr(policy, "fail_window", None)
    if fail is None:
        return None
    def as_td(w) -> timedelta:
        return w.to_timedelta() if hasattr(w, "to_timedelta") else timedelta(seconds=w.total_seconds())
    return (as_td(warn) if warn is not None else as_td(fail)), as_td(fail)


_OBSERVATIONS_READ = 24  # the latest observations of an asset (landing: one per hour whose files changed)


def _last_update(instance: dg.DagsterInstance, key: dg.AssetKey) -> datetime | None:
    """Latest materialization or observation. An observation that says when the data itself last changed
    (``dagster/last_updated_timestamp``: landing's newest file, the trust table's last commit) counts from
    then, not from when it was observed: watching a folder that stopped filling does not keep it fresh."""
    stamps = []
    event = instance.get_latest_materialization_event(key)
    if event is not None:
        stamps.append(event.timestamp)
    for record in instance.fetch_observations(key, limit=_OBSERVATIONS_READ).records:
        observation = record.asset_observation
        entry = (observation.metadata or {}).get("dagster/last_updated_timestamp") if observation else None
        stamps.append(float(cast(float, entry.value)) if entry is not None else record.timestamp)
    return datetime.fromtimestamp(max(stamps), tz=UTC) if stamps else None


def _floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def evaluate_freshness(instance: dg.DagsterInstance, asset_graph_or_defs, lake_paths: LakePaths | None,
                       now: datetime, *, first_seen: Mapping[str, datetime] | None = None) -> list[Alert]:
    """One alert per asset whose lag since its last update exceeds its warn (or fail) SLA.

    The SLA is ``SLAS[layer]`` with layer = the asset's group (staging/intermediate -> warehouse),
    else the asset's own FreshnessPolicy windows. An asset never materialized nor observed is measured
    from when it was first seen (``first_seen``, asset key string -> time; the sensor keeps it in its
    cursor): a fresh install gets the same slack as a stale asset, then breaches like one. Without an
    entry it is new, not stale: no alert. The alert's window start is the moment the breach began,
    floored to the hour, so re-evaluating the same breach (every sensor tick) yields the same ``alert_id``.
    ``lake_paths`` is unused by the evaluation (it only reads the Dagster instance); it is part of
    the signature so callers pass the lake they will record to.
    """
    del lake_paths
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    graph = _asset_graph(asset_graph_or_defs)
    alerts: list[Alert] = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        if node.freshness_policy is None:
            continue
        layer = layer_of(node.group_name)
        windows = SLAS[layer] if layer else _policy_windows(node.freshness_policy)
        if windows is None:
            continue
        subject = key.to_user_string()
        last = _last_update(instance, key)
        never = last is None
        if last is None:
            seen = (first_seen or {}).get(subject)
            if seen is None:
                continue
            last = seen
        lag = now - last
        warn, fail = windows
        severity: Severity
        if lag > fail:
            severity, threshold = "fail", fail
        elif lag > warn:
            severity, threshold = "warn", warn
        else:
            continue
        since = (f"never updated nor observed since first seen {last.isoformat(timespec='seconds')}" if never
                 else f"last updated {last.isoformat(timespec='seconds')}")
        alerts.append(Alert(
            kind=KIND, subject=subject, severity=severity,
            detail=(f"{subject} ({layer or node.group_name}) {since}, "
                    f"{lag.total_seconds() / 3600:.1f} h ago: over its {severity} SLA of "
                    f"{threshold.total_seconds() / 3600:g} h"),
            observed_lag_s=lag.total_seconds(), threshold_s=threshold.total_seconds(),
            window_start=_floor_hour(last + threshold), raised_at=now,
        ))
    return alerts


@dg.sensor(name="freshness_sla_sensor", minimum_interval_seconds=300,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Observe observability/data_trust_daily, and record an alert (table, log line, notifier) when "
                       "an asset breaches its freshness SLA — one never updated, once its SLA has passed since the "
                       "sensor first saw it.")
def freshness_sla_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    """The cursor keeps when each asset was first seen (the grace of a fresh install) and the trust table's
    last observed version (observed again only when it changed)."""
    paths = lake.paths()
    now = datetime.now(UTC)
    cursor = json.loads(context.cursor) if context.cursor else {}
    seen = {k: datetime.fromisoformat(v) for k, v in cursor.get("first_seen", {}).items()}
    assert context.repository_def is not None  # a sensor of a code location
    for key in context.repository_def.asset_graph.get_all_asset_keys():
        seen.setdefault(key.to_user_string(), now)
    trust = observe_data_trust(paths)
    trust_version = trust.tags["dagster/data_version"] if trust is not None else None
    if trust is not None and trust_version != cursor.get("trust_version"):
        # Reported now (not as the SensorResult's events, recorded after this returns): judged on this tick.
        context.instance.report_runless_asset_event(trust)
        # Its blocking check, judged on the version just observed (no run writes this table: the warehouse
        # build rewrites it, so the check is evaluated here rather than after a materialization).
        context.instance.report_runless_asset_event(daily_trust_evaluation(paths))
    alerts = evaluate_freshness(context.instance, context.repository_def, paths, now, first_seen=seen)
    new = raise_alerts(paths, alerts)
    return dg.SensorResult(
        cursor=json.dumps({"first_seen": {k: v.isoformat() for k, v in sorted(seen.items())},
                           "trust_version": trust_version}),
        skip_reason=f"{len(alerts)} asset(s) over their freshness SLA, {new} new alert(s) recorded")


def failed_run_alerts(instance: dg.DagsterInstance, run_id: str, *, now: datetime | None = None) -> list[Alert]:
    """The alerts of a failed run: when a gate of error severity failed in it, that gate's ``gate_failed``
    alert (the very alert the trust hooks raise, same id: a run of a job without the hooks, such as Dagster's
    implicit asset job, is heard too); else one ``run_failed`` alert — subject the job (and its partition or
    hour range), the failed steps and their errors as detail, the run id as occurrence. [] when the run did
    not fail."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.status != dg.DagsterRunStatus.FAILURE:
        return []
    now = now or datetime.now(UTC)
    types = {dg.DagsterEventType.ASSET_CHECK_EVALUATION, dg.DagsterEventType.STEP_FAILURE,
             dg.DagsterEventType.RUN_FAILURE}
    records = instance.get_records_for_run(run_id, of_type=types, limit=100_000).records
    gates, failures, message = [], [], ""
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            data = event.asset_check_evaluation_data
            gates.append({"run_id": run_id, "asset": data.asset_key.to_user_string(),
                          "partition": getattr(data, "partition", None), "gate": data.check_name,
                          "passed": bool(data.passed), "severity": getattr(data.severity, "value", None),
                          "description": data.description or ""})
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            failures.append(f"{event.step_key}: {' '.join(error.message.split())[:300] if error else 'failed'}")
        else:
            message = event.message or ""
    failed_gates = gate_alerts(gates, raised_at=now)
    if failed_gates:
        return failed_gates
    start, end = (run.tags.get(tag) for tag in HOUR_RANGE_TAGS)
    scope = run.tags.get("dagster/partition") or (f"{start}..{end}" if start and end else "")
    subject = f"{run.job_name}[{scope}]" if scope else run.job_name
    detail = "; ".join(failures) or message or "the run failed"
    return [Alert(kind=RUN_FAILED, subject=subject, severity="fail", detail=f"run {run_id[:8]}: {detail}"[:1000],
                  occurrence=run_id, raised_at=now)]


def run_failed_alert(instance: dg.DagsterInstance, run_id: str, *, now: datetime | None = None) -> Alert | None:
    """The ``run_failed`` alert of a run that failed other than by a gate (see :func:`failed_run_alerts`)."""
    return next((a for a in failed_run_alerts(instance, run_id, now=now) if a.kind == RUN_FAILED), None)


def alert_failed_runs(instance: dg.DagsterInstance, paths: LakePaths, run_ids: list[str]) -> int:
    """Raise the alerts of each failed run among ``run_ids`` (:func:`failed_run_alerts`); return how many were new."""
    return raise_alerts(paths, [a for r in run_ids for a in failed_run_alerts(instance, r)])


@dg.run_failure_sensor(name="run_failure_alert_sensor", minimum_interval_seconds=30,
                       default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Record an alert (table, log line, notifier) for a failed run: its failed gates', "
                                   "or one for the run when no gate failed in it.")
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, lake: LakeResource) -> None:
    raise_alerts(lake.paths(), failed_run_alerts(context.instance, context.dagster_run.run_id))

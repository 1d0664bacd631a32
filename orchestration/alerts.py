"""Freshness SLA alerts: a sensor that records a breach of ``orchestration.freshness.SLAS``.

``dagster dev`` shows each asset's FreshnessPolicy; this sensor turns a breach into a row of
``$ROOT/delta/observability/alerts``, a WARNING log line and a notification (``lake.alerts``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from lake.alerts import Alert, Severity, raise_alerts
from lake.paths import LakePaths
from orchestration.freshness import SLAS
from orchestration.resources import LakeResource

__all__ = ["evaluate_freshness", "freshness_sla_sensor", "layer_of"]

KIND = "freshness"
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


def _last_update(instance: dg.DagsterInstance, key: dg.AssetKey) -> datetime | None:
    """Latest materialization (or, for external assets such as landing/events, observation)."""
    stamps = []
    event = instance.get_latest_materialization_event(key)
    if event is not None:
        stamps.append(event.timestamp)
    obs = instance.fetch_observations(key, limit=1).records
    if obs:
        stamps.append(obs[0].timestamp)
    return datetime.fromtimestamp(max(stamps), tz=UTC) if stamps else None


def _floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def evaluate_freshness(instance: dg.DagsterInstance, asset_graph_or_defs, lake_paths: LakePaths | None,
                       now: datetime) -> list[Alert]:
    """One alert per asset whose lag since its last update exceeds its warn (or fail) SLA.

    The SLA is ``SLAS[layer]`` with layer = the asset's group (staging/intermediate -> warehouse),
    else the asset's own FreshnessPolicy windows. Assets never materialized are new, not stale:
    no alert. The alert's window start is the moment the breach began, floored to the hour, so
    re-evaluating the same breach (every sensor tick) yields the same ``alert_id``.
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
        last = _last_update(instance, key)
        if last is None:
            continue
        lag = now - last
        warn, fail = windows
        severity: Severity
        if lag > fail:
            severity, threshold = "fail", fail
        elif lag > warn:
            severity, threshold = "warn", warn
        else:
            continue
        subject = key.to_user_string()
        alerts.append(Alert(
            kind=KIND, subject=subject, severity=severity,
            detail=(f"{subject} ({layer or node.group_name}) last updated {last.isoformat(timespec='seconds')}, "
                    f"{lag.total_seconds() / 3600:.1f} h ago: over its {severity} SLA of "
                    f"{threshold.total_seconds() / 3600:g} h"),
            observed_lag_s=lag.total_seconds(), threshold_s=threshold.total_seconds(),
            window_start=_floor_hour(last + threshold), raised_at=now,
        ))
    return alerts


@dg.sensor(name="freshness_sla_sensor", minimum_interval_seconds=300,
           default_status=dg.DefaultSensorStatus.STOPPED,
           description="Record an alert (table, log line, notifier) when an asset breaches its freshness SLA.")
def freshness_sla_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    paths = lake.paths()
    alerts = evaluate_freshness(context.instance, context.repository_def, paths, datetime.now(UTC))
    new = raise_alerts(paths, alerts)
    return dg.SkipReason(f"{len(alerts)} asset(s) over their freshness SLA, {new} new alert(s) recorded")

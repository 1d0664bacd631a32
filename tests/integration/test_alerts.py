"""Freshness SLA alerts: a breach becomes one row, a log line and a notification, exactly once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from lake.alerts import (
    Alert,
    LogNotifier,
    raise_alerts,
    read_alerts,
)
from orchestration.alerts import evaluate_freshness, freshness_sla_sensor
from orchestration.definitions import build_definitions
from orchestration.resources import LakeResource

SILVER = dg.AssetKey(["silver", "events"])
STAGING = dg.AssetKey(["staging", "stg_silver__events"])


@pytest.fixture
def lake(paths):
    defs = build_definitions(lake=LakeResource(root=paths.root))
    with dg.DagsterInstance.ephemeral() as instance:
        yield paths, defs, instance


def _materialize(instance, key) -> datetime:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key))
    return datetime.fromtimestamp(instance.get_latest_materialization_event(key).timestamp, tz=UTC)


def _alert(subject="silver/events") -> Alert:
    now = datetime.now(UTC)
    return Alert(kind="freshness", subject=subject, severity="fail", detail="stale", observed_lag_s=18000.0,
                 threshold_s=10800.0, window_start=now.replace(minute=0, second=0, microsecond=0), raised_at=now)


def test_stale_silver_asset_raises_one_fail_alert_once(lake, caplog):
    paths, defs, instance = lake
    last = _materialize(instance, SILVER)
    now = last + timedelta(hours=5)
    alerts = evaluate_freshness(instance, defs, paths, now)
    assert [a.subject for a in alerts] == ["silver/events"], "never-materialized assets are new, not stale"
    with caplog.at_level(logging.WARNING, logger="growthlake.alerts"):
        assert raise_alerts(paths, alerts, LogNotifier()) == 1
    assert sum("ALERT freshness FAIL silver/events" in r.getMessage() for r in caplog.records) == 1
    row = read_alerts(paths).row(0, named=True)
    assert (row["kind"], row["subject"], row["severity"]) == ("freshness", "silver/events", "fail")
    assert row["threshold_s"] == 3 * 3600 and row["observed_lag_s"] == pytest.approx(5 * 3600, abs=1)
    assert row["alert_id"] == alerts[0].alert_id and len(row["alert_id"]) == 64

    # the next sensor ticks in the same hour (and later, for the same breach) record nothing new
    for later in (timedelta(minutes=5), timedelta(minutes=40)):
        again = evaluate_freshness(instance, defs, paths, now + later)
        assert [a.alert_id for a in again] == [alerts[0].alert_id]
        assert raise_alerts(paths, again, LogNotifier()) == 0
    assert read_alerts(paths).height == 1


def test_fresh_asset_raises_nothing_and_warn_precedes_fail(lake):
    paths, defs, instance = lake
    last = _materialize(instance, SILVER)
    assert evaluate_freshness(instance, defs, paths, last + timedelta(minutes=30)) == []
    (warn,) = evaluate_freshness(instance, defs, paths, last + timedelta(hours=2, minutes=30))
    assert (warn.severity, warn.threshold_s) == ("warn", 2 * 3600)


def test_staging_group_uses_the_warehouse_sla(lake):
    paths, defs, instance = lake
    last = _materialize(instance, STAGING)
    assert evaluate_freshness(instance, defs, paths, last + timedelta(hours=25)) == []
    (alert,) = evaluate_freshness(instance, defs, paths, last + timedelta(hours=27))
    assert (alert.subject, alert.severity, alert.threshold_s) == ("staging/stg_silver__events", "warn", 26 * 3600)


def test_nothing_materialized_raises_nothing(lake):
    paths, defs, instance = lake
    assert evaluate_freshness(instance, defs, paths, datetime.now(UTC) + timedelta(days=30)) == []


def test_sensor_records_alerts_and_is_registered(lake, monkeypatch):
    paths, defs, instance = lake
    assert defs.resolve_sensor_def("freshness_sla_sensor").minimum_interval_seconds == 300
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=SILVER))
    future = datetime.now(UTC) + timedelta(hours=5)

    class _Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return future

    monkeypatch.setattr("orchestration.alerts.datetime", _Clock)
    monkeypatch.delenv("GROWTHLAKE_ALERT_WEBHOOK", raising=False)
    ctx = dg.build_sensor_context(instance=instance, definitions=defs,
                                  resources={"lake": LakeResource(root=paths.root)})
    result = freshness_sla_sensor(ctx)
    assert result.skip_reason is not None and "1 new alert" in result.skip_reason.skip_message
    assert read_alerts(paths)["subject"].to_list() == ["silver/events"]


def test_an_asset_never_updated_breaches_once_its_sla_passed_since_first_seen(lake, monkeypatch):
    """A fresh install is not alerted at once: each never-updated asset gets its own SLA from when the sensor
    first saw it (kept in the cursor), then breaches like a stale one: the hourly layers after 2 h (warn) and
    3-4 h (fail), the nightly ones not before 26 h."""
    paths, defs, instance = lake
    monkeypatch.delenv("GROWTHLAKE_ALERT_WEBHOOK", raising=False)
    start = datetime.now(UTC)
    clock = {"now": start}

    class _Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return clock["now"]

    monkeypatch.setattr("orchestration.alerts.datetime", _Clock)

    def tick(cursor):
        with dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor,
                                     resources={"lake": LakeResource(root=paths.root)}) as ctx:
            return freshness_sla_sensor(ctx)

    first = tick(None)
    assert "0 asset(s) over" in first.skip_reason.skip_message  # fresh install: nothing alerted
    clock["now"] = start + timedelta(hours=1, minutes=50)
    assert tick(first.cursor).skip_reason.skip_message.startswith("0 asset(s)")  # within every warn window
    clock["now"] = start + timedelta(hours=4, minutes=10)
    late = tick(first.cursor)
    alerts = read_alerts(paths)
    # every hourly layer never updated: landing (4 h fail), bronze and silver (3 h fail)
    assert {"landing/events", "bronze/events", "silver/events"} <= set(alerts["subject"].to_list())
    landing = alerts.filter(alerts["subject"] == "landing/events").row(0, named=True)
    assert landing["severity"] == "fail" and "never updated nor observed" in landing["detail"]
    assert not any(s.startswith(("marts/", "features/")) for s in alerts["subject"].to_list())  # 26 h+: not yet
    # the cursor keeps the first sighting: the same breach next tick adds nothing
    assert "0 new alert" in tick(late.cursor).skip_reason.skip_message
    # landing observed (as the landing sensor reports it): measured from its newest file, no longer alerted
    instance.report_runless_asset_event(dg.AssetObservation(
        asset_key=dg.AssetKey(["landing", "events"]), partition="2026-12-01-00:00",
        metadata={"dagster/last_updated_timestamp": dg.MetadataValue.timestamp(clock["now"].timestamp())}))
    subjects = {a.subject for a in evaluate_freshness(instance, defs, paths, clock["now"],
                                                      first_seen={"landing/events": start})}
    assert "landing/events" not in subjects

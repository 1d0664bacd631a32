"""Alerts people hear: a failed gate, a failed run and a freshness breach each raise exactly one alert
(row, log line, webhook POST), however often they are reported again; people acknowledge and resolve them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pytest

from lake import delta_io
from lake.alerts import ALERT_ACTIONS_SCHEMA, gate_alerts, raise_alerts, read_alerts, resolve_alert
from lake.trust import GATE_EVALUATIONS
from orchestration.alerts import evaluate_freshness, run_failed_alert, run_failure_alert_sensor
from orchestration.cli import main as cli
from orchestration.definitions import build_definitions
from orchestration.resources import LakeResource
from tests.helpers import event, write_batch

KEY = "2026-11-02-05:00"


def _bad_hour(paths) -> None:
    """A third of the rows carry neither user_id nor anonymous_id: bronze's GX gate fails the hour."""
    write_batch(paths, KEY, [event() for _ in range(20)] + [event(anonymous_id=None, user_id=None) for _ in range(10)])


def _sensor_tick(instance, paths, run_id: str) -> None:
    """The run-failure sensor evaluated for ``run_id`` as the daemon would."""
    (record,) = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    ctx = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor", dagster_event=record.event_log_entry.dagster_event,
        dagster_instance=instance, dagster_run=instance.get_run_by_id(run_id),
        resources={"lake": LakeResource(root=paths.root)}).for_run_failure()
    run_failure_alert_sensor(ctx)


def test_each_failure_kind_raises_exactly_one_alert(paths, webhook, monkeypatch, caplog):
    url, received = webhook
    monkeypatch.setenv("GROWTHLAKE_ALERT_WEBHOOK", url)
    defs = build_definitions(lake=LakeResource(root=paths.root))
    assert defs.resolve_sensor_def("run_failure_alert_sensor") is not None
    with dg.DagsterInstance.ephemeral() as instance, caplog.at_level(logging.WARNING, logger="growthlake.alerts"):
        # a failed gate: the hourly job's trust hook raises it
        _bad_hour(paths)
        gated = defs.resolve_job_def("hourly_ingestion").execute_in_process(
            partition_key=KEY, instance=instance, raise_on_error=False)
        assert not gated.success
        # a failed run, not by a gate: the warehouse cannot be built on a lake without silver
        broken = defs.resolve_job_def("nightly_warehouse").execute_in_process(instance=instance, raise_on_error=False)
        assert not broken.success
        assert not [e for e in broken.get_asset_check_evaluations() if not e.passed]
        # the run-failure sensor sees both runs: the gate's run is that gate's alert already
        assert run_failed_alert(instance, gated.run_id) is None
        _sensor_tick(instance, paths, gated.run_id)
        _sensor_tick(instance, paths, broken.run_id)
        # reported again — another sensor tick, the gate log re-read — nothing new
        _sensor_tick(instance, paths, broken.run_id)
        gates = pl.from_arrow(delta_io.read(paths.gate_evaluations, GATE_EVALUATIONS))
        assert isinstance(gates, pl.DataFrame)
        assert raise_alerts(paths, gate_alerts(gates.to_dicts())) == 0
    with dg.DagsterInstance.ephemeral() as instance, caplog.at_level(logging.WARNING, logger="growthlake.alerts"):
        # a freshness breach: silver/events last updated five hours ago (its SLA fails at 3 h)
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=dg.AssetKey(["silver", "events"])))
        breach = evaluate_freshness(instance, defs, paths, datetime.now(UTC) + timedelta(hours=5))
        assert raise_alerts(paths, breach) == 1
        # the next sensor tick, five minutes later: the same breach
        assert raise_alerts(paths, evaluate_freshness(instance, defs, paths,
                                                      datetime.now(UTC) + timedelta(hours=5, minutes=5))) == 0

    alerts = read_alerts(paths)
    by_kind = {r["kind"]: r for r in alerts.iter_rows(named=True)}
    assert sorted(alerts["kind"].to_list()) == ["freshness", "gate_failed", "run_failed"]
    assert by_kind["gate_failed"]["subject"] == f"bronze/events[{KEY}] gx_bronze_events"
    assert "identity_key" in by_kind["gate_failed"]["detail"]
    assert by_kind["run_failed"]["subject"] == "nightly_warehouse"
    assert broken.run_id[:8] in by_kind["run_failed"]["detail"]
    assert by_kind["freshness"]["subject"] == "silver/events"
    assert alerts["state"].to_list() == ["open"] * 3
    # one WARNING line and one POST per alert
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT ")]
    assert sorted(line.split()[1] for line in lines) == ["freshness", "gate_failed", "run_failed"]
    assert sorted(b["kind"] for b in received) == ["freshness", "gate_failed", "run_failed"]
    assert {b["alert_id"] for b in received} == set(alerts["alert_id"].to_list())


def test_growthlake_run_alerts_a_failed_gate_once(paths, monkeypatch, capsys):
    monkeypatch.delenv("GROWTHLAKE_ALERT_WEBHOOK", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    _bad_hour(paths)
    assert cli(["run", "--root", paths.root, "--from", KEY, "--to", KEY, "--no-warehouse"]) == 1
    alerts = read_alerts(paths)
    assert alerts["kind"].to_list() == ["gate_failed"], "the failed run is the gate's failure: one alert"
    assert alerts["subject"].to_list() == [f"bronze/events[{KEY}] gx_bronze_events"]


def test_a_gate_failing_outside_the_jobs_is_heard_through_the_run_failure_sensor(paths, monkeypatch):
    """Assets materialized ad hoc (Dagster's implicit job) carry no trust hooks: the sensor raises the gate's alert."""
    monkeypatch.delenv("GROWTHLAKE_ALERT_WEBHOOK", raising=False)

    @dg.asset(key=["silver", "adhoc"], check_specs=[dg.AssetCheckSpec("rows_present", asset=["silver", "adhoc"],
                                                                      blocking=True)])
    def adhoc():
        yield dg.Output(0)
        yield dg.AssetCheckResult(check_name="rows_present", passed=False, description="0 rows")

    @dg.asset(deps=[adhoc])
    def downstream() -> None:
        pass

    with dg.DagsterInstance.ephemeral() as instance:
        res = dg.materialize([adhoc, downstream], instance=instance, raise_on_error=False)
        assert not res.success
        _sensor_tick(instance, paths, res.run_id)
        _sensor_tick(instance, paths, res.run_id)  # the same run reported twice
    alerts = read_alerts(paths)
    assert alerts.select("kind", "subject", "detail").rows() == [("gate_failed", "silver/adhoc rows_present", "0 rows")]


def _raise_gate_alert(paths, *, hours_ago: float) -> str:
    raised = datetime.now(UTC) - timedelta(hours=hours_ago)
    (alert,) = gate_alerts([{"run_id": f"run-{hours_ago}", "asset": "silver/events", "partition": KEY,
                             "gate": "gx_silver_events", "passed": False, "severity": "ERROR",
                             "description": "12 rows without event_id"}], raised_at=raised)
    assert raise_alerts(paths, [alert]) == 1
    return alert.alert_id


def test_alerts_cli_lists_acks_and_resolves_with_the_actor_and_time_to_resolve(paths, monkeypatch, capsys):
    monkeypatch.delenv("GROWTHLAKE_ALERT_WEBHOOK", raising=False)
    first, second = _raise_gate_alert(paths, hours_ago=2), _raise_gate_alert(paths, hours_ago=5)
    assert cli(["alerts", "list", "--root", paths.root]) == 0
    out = capsys.readouterr().out
    assert first[:12] in out and second[:12] in out and "2 open, 0 resolved" in out

    assert cli(["alerts", "ack", first[:12], "--root", paths.root, "--actor", "ana"]) == 0
    assert "acknowledged" in capsys.readouterr().out
    monkeypatch.setenv("GROWTHLAKE_ACTOR", "oncall-bo")
    assert cli(["alerts", "resolve", first[:12], "--root", paths.root, "--note", "re-ran the hour"]) == 0
    assert "as oncall-bo, 2h 00m after it was raised" in capsys.readouterr().out

    row = read_alerts(paths).filter(pl.col("alert_id") == first).row(0, named=True)
    assert (row["state"], row["acked_by"], row["resolved_by"], row["resolve_note"]) == (
        "resolved", "ana", "oncall-bo", "re-ran the hour")
    assert row["time_to_resolve_s"] == pytest.approx(2 * 3600, abs=60)
    actions = sorted(delta_io.read(paths.alert_actions, ALERT_ACTIONS_SCHEMA).to_pylist(), key=lambda a: a["at"])
    assert [(a["action"], a["actor"]) for a in actions] == [("ack", "ana"), ("resolve", "oncall-bo")]

    assert cli(["alerts", "list", "--root", paths.root]) == 0
    out = capsys.readouterr().out
    assert first[:12] not in out and second[:12] in out and "1 open, 1 resolved; median time to resolve 2h 00m" in out
    assert cli(["alerts", "list", "--all", "--root", paths.root]) == 0
    assert first[:12] in capsys.readouterr().out
    cli(["status", "--root", paths.root])
    out = capsys.readouterr().out
    assert "alerts in the last 24 h: 2 (2 in all, 1 open: `growthlake alerts list`)" in out
    assert "resolved gate_failed silver/events" in out and "open     gate_failed silver/events" in out

    # clear one-line errors, exit 2, nothing recorded
    for argv, says in ((["resolve", first[:12]], "already resolved by oncall-bo"),
                       (["ack", "0000000000"], "no alert has this id"),
                       (["ack", "ab"], "at least 6 characters")):
        assert cli(["alerts", *argv, "--root", paths.root]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1
    assert len(delta_io.read(paths.alert_actions, ALERT_ACTIONS_SCHEMA)) == 2


def test_board_report_shows_open_alerts_and_time_to_resolve(paths, monkeypatch):
    from growth_loops.report import build_report

    monkeypatch.delenv("GROWTHLAKE_ALERT_WEBHOOK", raising=False)
    done, still_open = _raise_gate_alert(paths, hours_ago=3), _raise_gate_alert(paths, hours_ago=1)
    resolve_alert(paths, done, actor="ana", now=datetime.now(UTC) - timedelta(minutes=30))  # 2 h 30 m after
    page = build_report(paths, data_docs=False).read_text(encoding="utf-8")
    trust = page[page.index('<section id="trust">'):]
    assert "1 open alert (1 gate_failed); 1 resolved, median time to resolve 2h 30m" in trust
    assert f"silver/events[{KEY}] gx_silver_events" in trust and "12 rows without event_id" in trust
    assert trust.count("<td>gate_failed</td>") == 1, "only the open alert is listed"
    assert still_open != done

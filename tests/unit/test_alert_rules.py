"""The pure rules of lake/alerts: which gate evaluations alert, what makes two alerts the same, durations."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from lake.alerts import Alert, alert_summary, format_duration, gate_alerts


def _evaluation(**overrides):
    row = {"run_id": "run-1", "asset": "bronze/events", "partition": "2026-11-02-05:00",
           "gate": "volume_within_history", "passed": False, "severity": "ERROR", "description": "50% below the median"}
    return {**row, **overrides}


@pytest.mark.parametrize(("overrides", "subject"), [
    ({}, "bronze/events[2026-11-02-05:00] volume_within_history"),
    ({"partition": None, "asset": "reports/board", "gate": "report_complete"}, "reports/board report_complete"),
    ({"severity": None}, "bronze/events[2026-11-02-05:00] volume_within_history"),  # no severity: a gate
    ({"passed": True}, None),
    ({"severity": "WARN"}, None),  # a warn-level check (a dbt test configured to warn) is not a gate
])
def test_which_evaluations_raise_a_gate_alert(overrides, subject):
    alerts = gate_alerts([_evaluation(**overrides)])
    assert [a.subject for a in alerts] == ([subject] if subject else [])
    assert all((a.kind, a.severity) == ("gate_failed", "fail") for a in alerts)


def test_the_failing_run_tells_one_failure_from_the_next():
    (first,) = gate_alerts([_evaluation()])
    (again,) = gate_alerts([_evaluation()], raised_at=datetime(2030, 1, 1, tzinfo=UTC))  # re-read later
    (rerun,) = gate_alerts([_evaluation(run_id="run-2")])
    assert first.alert_id == again.alert_id != rerun.alert_id


def test_an_alert_needs_what_makes_it_distinct():
    with pytest.raises(ValueError, match="window_start or occurrence"):
        Alert(kind="run_failed", subject="nightly_warehouse", severity="fail", detail="boom")


@pytest.mark.parametrize(("seconds", "shown"), [
    (None, "-"), (0, "0s"), (59.4, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h 00m"), (9000, "2h 30m"),
    (86400 + 4 * 3600, "1d 04h"), (-5, "0s"),
])
def test_format_duration(seconds, shown):
    assert format_duration(seconds) == shown


def test_summary_counts_open_alerts_and_takes_the_median_time_to_resolve():
    frame = pl.DataFrame({"kind": ["gate_failed", "run_failed", "gate_failed", "freshness", "run_failed"],
                          "state": ["open", "acked", "resolved", "resolved", "resolved"],
                          "time_to_resolve_s": [None, None, 600.0, 3600.0, 7200.0]})
    assert alert_summary(frame) == {"open": 2, "resolved": 3, "median_time_to_resolve_s": 3600.0,
                                    "open_by_kind": {"gate_failed": 1, "run_failed": 1}}
    assert alert_summary(frame.head(0))["median_time_to_resolve_s"] is None

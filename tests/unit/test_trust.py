"""The trust rule: a day is untrusted while a gate on its data failed last, or silver lags its end."""

from __future__ import annotations

import datetime as dt

import pytest

from lake import delta_io
from lake.trust import (
    DAILY_TRUST,
    accept_gate,
    data_dates_of_partition,
    latest_gate_evaluations,
    record_gate_evaluations,
    silver_fresh_through,
    untrusted_days,
    write_daily_trust,
)
from tests.feature_helpers import at, silver_event, write_events

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)


def _gate(partition, gate, passed, *, minute=0, dates=None, asset="bronze/events"):
    return {"evaluated_at": dt.datetime(2026, 3, 4, 1, minute, tzinfo=dt.UTC), "run_id": f"r{minute}",
            "asset": asset, "partition": partition, "gate": gate, "passed": passed, "severity": "ERROR",
            "blocking": True,
            "description": f"{gate} {'ok' if passed else 'bad'}",
            "data_dates": data_dates_of_partition(partition) if dates is None else dates, "source": "dagster"}


@pytest.fixture
def fresh(paths):
    """Silver caught up: an event received at the end of D3."""
    write_events(paths, [silver_event("p1", "page_viewed", at(D1)), silver_event("p1", "page_viewed", at(D3, 23, 50))])
    return paths


def test_the_latest_evaluation_decides_and_only_the_days_of_its_data(fresh):
    record_gate_evaluations(fresh, [_gate("2026-03-02-14:00", "volume_within_history", False, minute=1,
                                          dates=[D1, D2])])  # the hour brought late events of D1
    bad = untrusted_days(fresh, [D1, D2, D3])
    assert set(bad) == {D1, D2}
    assert bad[D2] == ["bronze/events[2026-03-02-14:00]:volume_within_history failed"]
    record_gate_evaluations(fresh, [_gate("2026-03-02-14:00", "volume_within_history", True, minute=2)])
    assert untrusted_days(fresh, [D1, D2, D3]) == {}  # re-run, passed: trusted again


def test_a_failed_gate_on_an_unpartitioned_asset_untrusts_every_day_a_warning_none(fresh):
    warning = _gate(None, "accepted_values_currency", False, asset="staging/stg_silver__events", minute=1)
    record_gate_evaluations(fresh, [{**warning, "severity": "WARN"}])
    assert untrusted_days(fresh, [D1, D2, D3]) == {}  # reported on the dashboard, not enforced
    record_gate_evaluations(fresh, [_gate(None, "not_null_fct_daily_oec_date_day", False, asset="marts/fct_daily_oec")])
    assert set(untrusted_days(fresh, [D1, D2, D3])) == {D1, D2, D3}


def test_silver_behind_the_days_end_is_a_stale_upstream(paths):
    assert untrusted_days(paths, [D1]) == {D1: ["stale upstream: silver is empty, the day ends 2026-03-02 00:00 UTC"]}
    write_events(paths, [silver_event("p1", "page_viewed", at(D2, 12))])
    assert silver_fresh_through(paths) == at(D2, 12)
    bad = untrusted_days(paths, [D1, D2])
    assert list(bad) == [D2]
    assert bad[D2][0].startswith("stale upstream: silver holds events received up to 2026-03-02 12:00")
    write_events(paths, [silver_event("p1", "page_viewed", at(D2, 21, 30))])  # within the 3 h slack of the end
    assert untrusted_days(paths, [D1, D2]) == {}


def test_accepting_a_failure_needs_a_reason_and_trusts_the_days_again(fresh):
    record_gate_evaluations(fresh, [_gate("2026-03-02-14:00", "volume_within_history", False, minute=1)])
    with pytest.raises(ValueError, match="actor and a reason"):
        accept_gate(fresh, "bronze/events", "2026-03-02-14:00", "volume_within_history", actor="maria", reason=" ")
    with pytest.raises(ValueError, match="no failed latest evaluation"):
        accept_gate(fresh, "bronze/events", "2026-03-02-15:00", "volume_within_history", actor="maria", reason="x")
    accept_gate(fresh, "bronze/events", "2026-03-02-14:00", "volume_within_history", actor="maria",
                reason="real outage of the EU collector", now=dt.datetime(2026, 3, 4, 2, tzinfo=dt.UTC))
    assert untrusted_days(fresh, [D2]) == {}
    latest = latest_gate_evaluations(fresh).row(0, named=True)
    assert (latest["source"], latest["actor"], latest["passed"]) == ("operator", "maria", True)
    assert "real outage" in latest["description"] and "volume_within_history bad" in latest["description"]


def test_the_daily_trust_table_covers_every_day_of_silver(fresh):
    record_gate_evaluations(fresh, [_gate("2026-03-02-14:00", "schema_drift_at_landing", False)])
    verdicts = write_daily_trust(fresh)
    assert [(v.day, v.trusted) for v in verdicts] == [(D1, True), (D2, False), (D3, True)]
    rows = {r["date_day"]: r for r in delta_io.read(fresh.data_trust_daily, DAILY_TRUST).to_pylist()}
    assert rows[D2]["failed_gates"] == 1 and "schema_drift_at_landing" in rows[D2]["untrusted_reasons"]
    assert rows[D1]["untrusted_reasons"] is None
    assert write_daily_trust(fresh) and len(delta_io.read(fresh.data_trust_daily, DAILY_TRUST)) == 3  # replaced

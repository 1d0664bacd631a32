"""The OEC gate: a band learned from history, applied to the newest complete day."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pytest

from expectations import learned_band, validate_daily_oec


def test_band_is_robust_to_one_outlier_and_never_negative():
    history = [100, 104, 98, 101, 97, 103, 99, 5000]
    lo, hi = learned_band(history)
    assert lo < 97 and 104 < hi < 200  # the outlier does not widen it
    assert learned_band([1, 1, 1, 1, 1, 1, 1])[0] >= 0
    assert learned_band([100] * 6) is None  # too little history to learn from


def _warehouse(path, dau: list[int], *, revenue_last: float = 10.0) -> str:
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute("create table marts.fct_daily_oec (date_day date, active_users bigint, revenue double, "
                "revenue_per_active_user double, d7_retention double, trial_to_paid_rate double)")
    start = date(2026, 10, 1)
    for i, n in enumerate(dau):
        rev = revenue_last if i == len(dau) - 1 else 10.0
        con.execute("insert into marts.fct_daily_oec values (?, ?, ?, ?, 0.3, 0.2)",
                    [start + timedelta(days=i), n, rev, rev / n if n else None])
    con.close()
    return str(path)


@pytest.mark.parametrize(("last", "revenue", "passes"), [(101, 10.0, True), (45, 10.0, False), (100, -5.0, False)])
def test_newest_complete_day_is_checked_against_its_history(tmp_path, last, revenue, passes):
    dau = [100 + (i % 5) for i in range(28)] + [last]
    wh = _warehouse(tmp_path / "w.duckdb", dau, revenue_last=revenue)
    outcome, figures = validate_daily_oec(wh, as_of=date(2026, 10, 1) + timedelta(days=len(dau)))
    assert outcome.success is passes, outcome.summary()
    assert figures["active_users"] == last and figures["history_days"] == 28


def test_a_partial_today_is_not_judged(tmp_path):
    dau = [100] * 28 + [3]  # today, two hours in
    wh = _warehouse(tmp_path / "w.duckdb", dau)
    outcome, figures = validate_daily_oec(wh, as_of=date(2026, 10, 1) + timedelta(days=28))
    assert outcome.success and figures["active_users"] == 100

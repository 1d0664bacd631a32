"""One metric layer: the loops' metrics equal the marts on the same silver events.

The warehouse is built with ``lake.warehouse.build_warehouse`` (dbt compiles the metric layer's
measures to SQL); the same spec compiled to polars by ``growth_loops.metrics`` — the functions the
loops' experiments, guardrails and bandits call — must give the same numbers, day by day.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl
import pytest
from deltalake import DeltaTable

from growth_loops.metrics import daily_oec, load_metric_layer, metric_stats, person_days, unit_values
from lake.paths import LakePaths
from tests.helpers import warehouse_from_one_batch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    _, paths = warehouse_from_one_batch(tmp_path_factory.mktemp("metric-layer"), users=300, days=12, seed=8)
    events = pl.from_arrow(DeltaTable(paths.silver_events).to_pyarrow_table(
        columns=["person_id", "event_name", "event_ts", "event_date", "revenue", "currency", "onboarding_step"]))
    assert isinstance(events, pl.DataFrame)
    return paths, events.filter(pl.col("person_id").is_not_null())


def _warehouse(paths: LakePaths, sql: str) -> pl.DataFrame:
    con = duckdb.connect(paths.warehouse, read_only=True)
    try:
        frame = pl.from_arrow(con.sql(sql).to_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        return frame
    finally:
        con.close()


def _equal(ours: pl.DataFrame, theirs: pl.DataFrame, key: list[str], columns: list[str]) -> None:
    joined = ours.join(theirs, on=key, how="full", suffix="_mart", coalesce=True)
    assert joined.height == ours.height == theirs.height, "the two sides have different rows"
    for column in columns:
        a, b = joined[column].cast(pl.Float64), joined[f"{column}_mart"].cast(pl.Float64)
        assert ((a - b).abs().fill_null(0) < 1e-9).all() and (a.is_null() == b.is_null()).all(), column


def test_person_days_and_the_daily_oec_equal_the_marts(lake):
    paths, events = lake
    layer = load_metric_layer()
    ours = person_days(events, layer).rename({"active": "is_active"})
    theirs = _warehouse(paths, "select person_id, activity_date, is_active, revenue "
                               "from intermediate.int_events_aggregated_to_person_days")
    _equal(ours, theirs, ["person_id", "activity_date"], ["is_active", "revenue"])
    assert ours["revenue"].sum() > 0 and ours["is_active"].sum() > 500

    oec = daily_oec(events, layer)
    mart = _warehouse(paths, "select date_day, active_users, revenue, revenue_per_active_user, d7_cohort_users, "
                             "d7_retention from marts.fct_daily_oec")
    _equal(oec, mart, ["date_day"], ["active_users", "revenue", "revenue_per_active_user", "d7_cohort_users",
                                     "d7_retention"])
    assert oec["d7_retention"].drop_nulls().len() >= 4


def test_the_unit_metrics_loops_read_equal_the_oec_of_the_marts(lake):
    """Every signed-up person as a unit starting at a day's midnight, measured over that day with
    the loops' own path (unit_values → metric_stats): the ratio metric is the OEC of that day."""
    paths, events = lake
    layer = load_metric_layer()
    mart = _warehouse(paths, "select * from marts.fct_daily_oec").filter(pl.col("active_users") > 0)
    people = events.filter(~pl.col("person_id").str.starts_with("anon:")).select("person_id").unique()
    assert events.filter(pl.col("person_id").str.starts_with("anon:"))["revenue"].fill_null(0).sum() == 0
    rpau = layer.metric("revenue_per_active_user").with_window(1)
    retention = layer.metric("retention_d7")
    signups = (events.filter(pl.col("event_name") == "user_signed_up").group_by("person_id")
               .agg(start_at=pl.col("event_ts").min()))
    checked = 0
    for row in mart.iter_rows(named=True):
        midnight = dt.datetime.combine(row["date_day"], dt.time(), tzinfo=dt.UTC)
        units = people.with_columns(start_at=pl.lit(midnight, dtype=pl.Datetime("us", "UTC")))
        stats = metric_stats(unit_values(units, events, rpau, layer), rpau)
        assert stats.mean == pytest.approx(row["revenue_per_active_user"], rel=1e-12, abs=1e-12)
        assert stats.denominator.sum == row["active_users"]
        cohort = signups.filter(pl.col("start_at").dt.date() == row["date_day"] - dt.timedelta(days=7))
        if row["d7_retention"] is not None:
            values = unit_values(cohort, events, retention, layer)
            assert metric_stats(values, retention).mean == pytest.approx(row["d7_retention"], abs=1e-12)
            assert values.height == row["d7_cohort_users"]
            checked += 1
    assert checked >= 4

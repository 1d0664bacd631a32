"""The metric layer's spec and its polars compilation: windows, measures, ratios, validation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml

from growth_loops.experiments import RatioStats
from growth_loops.metrics import MetricError, load_metric_layer, mature_units, metric_stats, unit_values
from lake.dbt_manifest import DBT_PROJECT_DIR

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def _events(rows: list[tuple[str, str, dt.datetime, float | None, str | None, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"person_id": p, "event_name": e, "event_ts": ts, "event_date": ts.date(), "revenue": r, "currency": c,
          "onboarding_step": s} for p, e, ts, r, c, s in rows],
        schema={"person_id": pl.String, "event_name": pl.String, "event_ts": pl.Datetime("us", "UTC"),
                "event_date": pl.Date, "revenue": pl.Float64, "currency": pl.String, "onboarding_step": pl.String})


EVENTS = _events([
    ("a", "payment_succeeded", T0, 10.0, "USD", None),                       # at the start: counts
    ("a", "payment_succeeded", T0 + dt.timedelta(days=6, hours=23), 5.0, "USD", None),
    ("a", "payment_succeeded", T0 + dt.timedelta(days=7), 99.0, "USD", None),  # window closed
    ("a", "payment_succeeded", T0 + dt.timedelta(hours=1), 50.0, "EUR", None),  # not the reporting currency
    ("a", "page_viewed", T0 + dt.timedelta(days=7, hours=-14), None, None, None),  # 2026-03-09 01:00: the 7th day
    ("b", "email_opened", T0 + dt.timedelta(hours=2), None, None, None),      # not activity
    ("b", "onboarding_step_completed", T0 - dt.timedelta(hours=3), None, None, "1"),  # same day, before the start
    ("b", "onboarding_step_completed", T0 + dt.timedelta(hours=1), None, None, "2"),
    ("b", "onboarding_step_completed", T0 + dt.timedelta(hours=2), None, None, "2"),
])
UNITS = pl.DataFrame({"person_id": ["a", "b", "c"], "arm": ["control", "treatment", "control"],
                      "start_at": [T0, T0, T0]}, schema_overrides={"start_at": pl.Datetime("us", "UTC")})


@pytest.mark.parametrize(
    ("metric", "window", "expected"),
    [
        ("revenue_per_user", None, {"a": 15.0, "b": 0.0, "c": 0.0}),      # [start, start + 7 days), USD only
        ("revenue_per_user", 1, {"a": 10.0, "b": 0.0, "c": 0.0}),
        ("retention_d7", None, {"a": 1.0, "b": 0.0, "c": 0.0}),           # active on the calendar day start + 7
        ("converted", None, {"a": 0.0, "b": 0.0, "c": 0.0}),
        ("onboarding_completed", None, {"a": 0.0, "b": 0.0, "c": 0.0}),   # 2 distinct steps of 5 that day
    ],
)
def test_unit_values_measure_each_unit_over_its_own_window(metric, window, expected):
    layer = load_metric_layer()
    values = unit_values(UNITS, EVENTS, layer.metric(metric).with_window(window), layer)
    assert dict(zip(values["person_id"], values["value"], strict=True)) == expected
    assert values["arm"].to_list() == UNITS["arm"].to_list()  # the units' own columns are kept


def test_a_ratio_metric_carries_its_denominator_and_becomes_ratio_statistics():
    layer = load_metric_layer()
    metric = layer.metric("revenue_per_active_user")
    values = unit_values(UNITS, EVENTS, metric, layer)
    assert values["denominator"].to_list() == [1.0, 1.0, 0.0]  # b onboarded (activity); c did nothing
    stats = metric_stats(values, metric)
    assert isinstance(stats, RatioStats) and stats.mean == 7.5 and stats.n == 3
    only_email = unit_values(UNITS.filter(pl.col("person_id") == "b"), EVENTS.filter(
        pl.col("event_name") == "email_opened"), metric, layer)
    assert only_email["denominator"].to_list() == [0.0]  # opening an email is not activity


def test_a_unit_is_measured_only_once_its_window_closed():
    layer = load_metric_layer()
    retention = layer.metric("retention_d7")
    as_of = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)  # the 7th day after 2026-03-02 is 2026-03-09: closed
    assert mature_units(UNITS, retention, as_of).height == 3
    assert mature_units(UNITS, retention, as_of - dt.timedelta(seconds=1)).height == 0
    assert mature_units(UNITS, layer.metric("revenue_per_user"), T0 + dt.timedelta(days=7)).height == 3


def test_the_same_person_can_be_several_units():
    layer = load_metric_layer()
    twice = pl.concat([UNITS.head(1), UNITS.head(1).with_columns(start_at=pl.lit(T0 + dt.timedelta(days=7),
                                                                                   dtype=pl.Datetime("us", "UTC")))])
    values = unit_values(twice, EVENTS, layer.metric("revenue_per_user"), layer)
    assert values["value"].to_list() == [15.0, 99.0]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda s: s["measures"]["revenue"].update(agg="median"), "agg 'median' is unknown"),
        (lambda s: s["metrics"]["retention_d7"].update(measure="nope"), "measure 'nope' is not declared"),
        (lambda s: s["metrics"]["revenue_per_active_user"].pop("denominator"), "denominator None"),
        (lambda s: s["metrics"]["converted"].update(window_days=0), "window_days 0"),
        (lambda s: s["measures"]["revenue"].pop("value"), "needs a `value` column"),
    ],
)
def test_a_malformed_spec_is_refused_naming_the_entry(tmp_path: Path, edit, problem):
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    edit(project["vars"]["metric_layer"])
    (tmp_path / "dbt_project.yml").write_text(yaml.safe_dump(project))
    with pytest.raises(MetricError, match=problem):
        load_metric_layer(tmp_path)


def test_an_unknown_metric_names_the_known_ones():
    with pytest.raises(MetricError, match="revenue_per_active_user"):
        load_metric_layer().metric("revenue_per_visitor")

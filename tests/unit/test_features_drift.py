"""Drift gate: PSI per feature between two materializations, failing above a threshold."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from growth_loops.features.drift import (
    PSI_EPSILON,
    DriftReport,
    FeatureDrift,
    drift_report,
    population_stability_index,
)
from growth_loops.features.errors import FeatureStoreError
from growth_loops.features.views import Feature, FeatureView

N = 5000

VIEW = FeatureView(
    name="engagement",
    features=(
        Feature("spend", "float64", "Spend in the last 28 days."),
        Feature("events_7d", "int64", "Events in the last 7 days."),
        Feature("plan", "string", "Plan tier."),
        Feature("is_active", "bool", "Active in the last 7 days."),
    ),
    ttl=timedelta(days=1),
    owner="growth",
    source="mart.engagement",
)


def materialization(seed: int, n: int = N, *, spend_mean: float = 50.0) -> pl.DataFrame:
    """Spend ~ Normal(mean, 10), events ~ Poisson(3), plan free/pro/team 60/30/10, 70% active."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "person_id": [f"p{i}" for i in range(n)],
        "spend": rng.normal(spend_mean, 10.0, n),
        "events_7d": rng.poisson(3.0, n).astype(np.int64),
        "plan": rng.choice(["free", "pro", "team"], n, p=[0.6, 0.3, 0.1]),
        "is_active": rng.random(n) < 0.7,
    })


def with_nulls(frame: pl.DataFrame, column: str, share: float, seed: int) -> pl.DataFrame:
    mask = np.random.default_rng(seed).random(frame.height) < share
    return frame.with_columns(pl.when(pl.Series(mask)).then(None).otherwise(pl.col(column)).alias(column))


def psi_of(report: DriftReport, feature: str) -> float | None:
    return next(f.psi for f in report.features if f.feature == feature)


# --- the gate ---------------------------------------------------------------------------------


def test_identical_frames_pass_with_zero_psi() -> None:
    frame = materialization(1)
    report = drift_report(frame, frame, VIEW)
    assert report.passed
    assert report.drifted == ()
    assert [f.feature for f in report.features] == list(VIEW.feature_names)
    assert all(f.psi is not None and f.psi < 1e-12 for f in report.features)
    assert all((f.rows_expected, f.rows_actual, f.note) == (N, N, "") for f in report.features)
    assert report.summary().startswith("no drift above PSI 0.25 (max 0.00 in ")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_independent_samples_of_one_distribution_stay_below_005(seed: int) -> None:
    report = drift_report(materialization(seed), materialization(seed + 100), VIEW)
    psis = {f.feature: f.psi for f in report.features}
    assert all(psi is not None and psi < 0.05 for psi in psis.values()), psis
    assert report.passed


@pytest.mark.parametrize("lam", [1.0, 3.0, 8.0])  # few distinct values (per-value bins) to many (deciles)
def test_poisson_counts_from_one_distribution_stay_below_005(lam: float) -> None:
    rng = np.random.default_rng(int(lam * 10))
    a, b = (pl.Series("events", rng.poisson(lam, N)) for _ in range(2))
    assert population_stability_index(a, b) < 0.05


def test_mean_shift_of_one_standard_deviation_fails_naming_only_that_feature() -> None:
    report = drift_report(materialization(1), materialization(2, spend_mean=60.0), VIEW)
    assert not report.passed
    assert report.drifted == ("spend",)
    assert psi_of(report, "spend") > 0.25
    assert report.max_psi == psi_of(report, "spend")
    assert report.summary() == f"drift above PSI 0.25 in spend ({psi_of(report, 'spend'):.2f})"


@pytest.mark.parametrize("column", ["events_7d", "plan", "spend"])
def test_null_rate_jump_from_5_to_50_percent_fails(column: str) -> None:
    previous = with_nulls(materialization(1), column, 0.05, seed=11)
    current = with_nulls(materialization(2), column, 0.50, seed=12)
    report = drift_report(previous, current, VIEW)
    assert report.drifted == (column,)


def test_nan_counts_as_null() -> None:
    nan = pl.Series("x", [1.0, 2.0, float("nan"), 3.0])
    null = pl.Series("x", [1.0, 2.0, None, 3.0])
    assert population_stability_index(nan, null) == 0.0
    assert population_stability_index(nan, pl.Series("x", [1.0, 2.0, 2.5, 3.0])) > 0.25


def test_new_category_in_40_percent_of_rows_fails() -> None:
    previous, current = materialization(1), materialization(2)
    rng = np.random.default_rng(5)
    current = current.with_columns(
        pl.when(pl.Series(rng.random(N) < 0.4)).then(pl.lit("enterprise")).otherwise("plan").alias("plan")
    )
    report = drift_report(previous, current, VIEW)
    assert report.drifted == ("plan",)
    assert "plan (" in report.summary()


def test_boolean_share_flip_fails() -> None:
    previous, current = materialization(1), materialization(2)
    current = current.with_columns(~pl.col("is_active"))  # 70% -> 30% active
    assert drift_report(previous, current, VIEW).drifted == ("is_active",)


def test_summary_lists_drifted_features_largest_first() -> None:
    previous = materialization(1)
    current = materialization(2, spend_mean=80.0).with_columns(
        pl.when(pl.col("plan") == "free").then(pl.lit("pro")).otherwise("plan").alias("plan")
    )
    report = drift_report(previous, current, VIEW)
    assert report.drifted == ("spend", "plan")  # declaration order
    spend, plan = psi_of(report, "spend"), psi_of(report, "plan")
    assert spend > plan
    assert report.summary() == f"drift above PSI 0.25 in spend ({spend:.2f}), plan ({plan:.2f})"


def test_too_few_rows_gives_none_and_passes() -> None:
    report = drift_report(materialization(1, n=12), materialization(2), VIEW)
    assert report.passed
    assert report.max_psi is None
    assert all(f.psi is None for f in report.features)
    note = "too few rows to compare (previous 12 < 50)"
    assert report.features[0] == FeatureDrift("spend", None, 12, N, note)
    assert "not compared" in report.summary()
    small = drift_report(materialization(1, n=12), materialization(2, n=12), VIEW, min_rows=10)
    assert small.max_psi is not None


def test_features_null_on_both_sides_have_psi_zero() -> None:
    previous = materialization(1).with_columns(pl.lit(None, dtype=pl.String).alias("plan"))
    current = materialization(2).with_columns(pl.lit(None).alias("plan"))  # dtype Null
    report = drift_report(previous, current, VIEW)
    assert psi_of(report, "plan") == 0.0
    assert report.features[2].note == "null on every row of both materializations"
    assert report.passed


def test_to_metadata_is_json_safe_and_rounded() -> None:
    report = drift_report(materialization(1), materialization(2, spend_mean=60.0), VIEW)
    meta = json.loads(json.dumps(report.to_metadata()))
    assert meta["view"] == "engagement"
    assert meta["threshold"] == 0.25
    assert meta["passed"] is False
    assert meta["drifted"] == ["spend"]
    assert set(meta["psi"]) == set(VIEW.feature_names)
    assert meta["psi"]["spend"] == round(psi_of(report, "spend"), 4)


@pytest.mark.parametrize("threshold", [0, 0.0, -0.1, float("nan"), float("inf"), True, "0.25"])
def test_threshold_must_be_a_positive_finite_number(threshold: object) -> None:
    frame = materialization(1, n=60)
    with pytest.raises(FeatureStoreError, match="threshold must be a finite number > 0"):
        drift_report(frame, frame, VIEW, threshold=threshold)  # type: ignore[arg-type]


def test_threshold_is_strict_and_configurable() -> None:
    report = drift_report(materialization(1), materialization(2, spend_mean=60.0), VIEW)
    spend = psi_of(report, "spend")
    at_edge = drift_report(materialization(1), materialization(2, spend_mean=60.0), VIEW, threshold=spend)
    assert at_edge.passed
    assert not drift_report(materialization(1), materialization(2), VIEW, threshold=1e-9).passed


def test_missing_feature_column_is_an_error() -> None:
    frame = materialization(1)
    message = "current materialization of 'engagement'.*missing feature columns plan"
    with pytest.raises(FeatureStoreError, match=message):
        drift_report(frame, frame.drop("plan"), VIEW)


def test_incomparable_dtypes_and_empty_series_are_errors() -> None:
    with pytest.raises(FeatureStoreError, match="not comparable"):
        population_stability_index(pl.Series("x", ["a", "b"]), pl.Series("x", [1, 2]))
    with pytest.raises(FeatureStoreError, match="not comparable"):
        population_stability_index(pl.Series("x", [True]), pl.Series("x", [1]))
    with pytest.raises(FeatureStoreError, match="actual series is empty"):
        population_stability_index(pl.Series("x", [1.0]), pl.Series("x", [], dtype=pl.Float64))
    with pytest.raises(FeatureStoreError, match="expected series is empty"):
        population_stability_index(pl.Series("x", [], dtype=pl.String), pl.Series("x", ["a"]))
    with pytest.raises(FeatureStoreError, match="bins must be"):
        population_stability_index(pl.Series("x", [1.0]), pl.Series("x", [1.0]), bins=1)


def test_int_and_float_columns_compare() -> None:
    ints = pl.Series("x", [0, 1, 2, 3] * 20)
    assert population_stability_index(ints, ints.cast(pl.Float64)) == 0.0


# --- binning and the arithmetic -----------------------------------------------------------------


def test_hand_computed_psi_on_categories_with_nulls() -> None:
    expected = pl.Series("plan", ["a", "a", "b", None])  # a 1/2, b 1/4, null 1/4
    actual = pl.Series("plan", ["a", "b", "b", "b", None, None])  # a 1/6, b 1/2, null 1/3
    by_hand = (
        (1 / 6 - 1 / 2) * math.log((1 / 6) / (1 / 2))
        + (1 / 2 - 1 / 4) * math.log((1 / 2) / (1 / 4))
        + (1 / 3 - 1 / 4) * math.log((1 / 3) / (1 / 4))
    )  # no bin is empty, so the smoothing plays no part
    assert population_stability_index(expected, actual) == pytest.approx(by_hand, abs=1e-9)
    assert population_stability_index(actual, expected) == pytest.approx(by_hand, abs=1e-9)  # symmetric


def test_hand_computed_psi_with_an_empty_bin_uses_the_epsilon() -> None:
    expected = pl.Series("plan", ["a"] * 4)
    actual = pl.Series("plan", ["a", "a", "b", "b"])  # "b" is new: its expected share 0 -> PSI_EPSILON
    by_hand = (0.5 - 1.0) * math.log(0.5 / 1.0) + (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON)
    assert PSI_EPSILON == 1e-4
    assert population_stability_index(expected, actual) == pytest.approx(by_hand, abs=1e-9)


def test_discrete_feature_with_three_values_gets_one_bin_per_value() -> None:
    expected = pl.Series("n", [0] * 6 + [1] * 3 + [2] * 1)  # 0.6 / 0.3 / 0.1
    actual = pl.Series("n", [0] * 6 + [1] * 1 + [2] * 3)  # 0.6 / 0.1 / 0.3: mass moved from 1 to 2 only
    by_hand = (0.1 - 0.3) * math.log(0.1 / 0.3) + (0.3 - 0.1) * math.log(0.3 / 0.1)  # = 0.4 ln 3
    assert population_stability_index(expected, actual) == pytest.approx(by_hand, abs=1e-9)
    assert population_stability_index(expected, expected.shuffle(seed=1)) == 0.0


def test_discrete_feature_value_never_seen_before_is_its_own_bin() -> None:
    expected = pl.Series("n", [0, 1, 2] * 100)
    above = pl.Series("n", [0, 1, 2] * 60 + [5] * 120)  # 40% at a new value beyond the top
    between = pl.Series("n", [0.0, 1.0, 2.0] * 60 + [1.5] * 120)  # 40% between two old values
    for actual in (above, between):
        old_values = 3 * (0.2 - 1 / 3) * math.log(0.2 / (1 / 3))
        by_hand = old_values + (0.4 - PSI_EPSILON) * math.log(0.4 / PSI_EPSILON)
        assert population_stability_index(expected, actual) == pytest.approx(by_hand, abs=1e-9)


def test_heavily_tied_counts_with_many_values_use_deduplicated_quantile_edges() -> None:
    rng = np.random.default_rng(7)

    def counts(zero_share: float) -> pl.Series:
        tail = rng.integers(1, 40, N)  # 39 distinct values, so decile edges (mostly 0) are deduplicated
        return pl.Series("n", np.where(rng.random(N) < zero_share, 0, tail))

    baseline = counts(0.85)
    assert population_stability_index(baseline, counts(0.85)) < 0.05
    assert population_stability_index(baseline, counts(0.40)) > 0.25  # zeros are their own bin


def test_continuous_identical_and_shifted() -> None:
    rng = np.random.default_rng(3)
    base = pl.Series("x", rng.normal(0.0, 1.0, N))
    assert population_stability_index(base, base) == 0.0
    assert population_stability_index(base, base + 1.0) > 0.25
    assert population_stability_index(base, base * 1.0 + 0.05) < 0.05

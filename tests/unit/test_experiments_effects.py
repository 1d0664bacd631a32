"""Ratio metrics, multiplicity and sample-size plans: the error rates and powers users rely on.

Simulations are seeded and draw sufficient statistics (or per-unit values) for all experiments at
once; each experiment is then analysed with the public functions.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from growth_loops.experiments import (
    ExperimentError,
    MeanStats,
    ProportionStats,
    RatioStats,
    adjust_p_values,
    effect,
    plan_sample_size,
)


@pytest.mark.parametrize(
    ("method", "raw", "adjusted"),
    [
        ("holm", [0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ("bh", [0.01, 0.04, 0.03, 0.005], [0.02, 0.04, 0.04, 0.02]),
        ("holm", [0.5], [0.5]),
        ("holm", [0.02, 0.02], [0.04, 0.04]),
        ("bh", [0.9, 0.8, 0.001], [0.9, 0.9, 0.003]),
        ("holm", [0.4, 0.3, 0.2], [0.6, 0.6, 0.6]),
    ],
)
def test_p_value_adjustments_by_hand(method, raw, adjusted):
    assert adjust_p_values(raw, method=method) == pytest.approx(adjusted)


def test_benjamini_hochberg_equals_scipy():
    p = np.random.default_rng(3).random(40) ** 3
    assert adjust_p_values(p, method="bh") == pytest.approx(stats.false_discovery_control(p, method="bh"))


def test_holm_keeps_the_chance_of_any_false_alarm_across_four_metrics_at_alpha():
    # Four independent metrics without any effect: raw p-values flag at least one in ~18.5% of
    # experiments; after Holm at most 5%.
    p = np.random.default_rng(11).random((20_000, 4))
    raw = np.mean((p < 0.05).any(axis=1))
    holm = np.mean([(adjust_p_values(row) < 0.05).any() for row in p[:4000]])
    assert raw == pytest.approx(1 - 0.95**4, abs=0.01)
    assert holm <= 0.05 + 0.01


@pytest.mark.parametrize("bad", [[1.2], [-0.1], [[0.1, 0.2]]])
def test_malformed_p_values_are_refused(bad):
    with pytest.raises(ExperimentError, match="p_values"):
        adjust_p_values(bad)


def test_the_ratio_interval_covers_the_true_revenue_per_active_user():
    # Revenue per active user = sum of revenue / number active, per arm: a ratio of sums whose
    # numerator and denominator are correlated (only active people pay). True ratio: 0.3 * 20 / 0.6 = 10.
    rng = np.random.default_rng(17)
    sims, n = 1500, 2000

    def arm() -> RatioStats:
        active = rng.random((sims, n)) < 0.6
        pays = active & (rng.random((sims, n)) < 0.5)
        revenue = np.where(pays, rng.exponential(20.0, (sims, n)), 0.0)
        return [RatioStats(MeanStats(n, float(r.sum()), float(r @ r)), ProportionStats(n, float(a.sum()),
                                                                                        float(a.sum())),
                           float(r @ a)) for r, a in zip(revenue, active.astype(float), strict=True)]

    control, treatment = arm(), arm()
    results = [effect(c, t, scale="relative") for c, t in zip(control, treatment, strict=True)]
    assert np.mean([c.mean for c in control]) == pytest.approx(10.0, rel=0.01)
    covered = np.mean([r.ci_low <= 0 <= r.ci_high for r in results])
    assert abs(covered - 0.95) <= 0.02
    absolute = [effect(c, t, scale="absolute") for c, t in zip(control, treatment, strict=True)]
    assert abs(np.mean([r.ci_low <= 0 <= r.ci_high for r in absolute]) - 0.95) <= 0.02


def test_a_fixed_horizon_plan_has_the_power_it_promises():
    plan = plan_sample_size(baseline_mean=0.10, relative_mde=0.05, alpha=0.05, power=0.8)
    assert 55_000 < plan.units_per_control < 62_000 and plan.units_per_treatment == plan.units_per_control
    rng = np.random.default_rng(23)
    n = plan.units_per_control
    xc, xt = rng.binomial(n, 0.10, 2000), rng.binomial(n, 0.105, 2000)
    power = np.mean([effect(ProportionStats(n, c, c), ProportionStats(n, t, t)).p_value < 0.05
                     for c, t in zip(xc, xt, strict=True)])
    assert abs(power - 0.8) <= 0.03


def test_a_sequential_plan_asks_for_more_units_and_says_how_many_days():
    fixed = plan_sample_size(baseline_mean=8.0, baseline_sd=20.0, relative_mde=0.05)
    sequential = plan_sample_size(baseline_mean=8.0, baseline_sd=20.0, relative_mde=0.05, alpha=0.05,
                                  sequential=True, daily_units=10_000)
    assert sequential.total_units > 1.5 * fixed.total_units
    assert sequential.days == -(-sequential.total_units // 10_000)


@pytest.mark.parametrize(
    "kwargs",
    [{"baseline_mean": 1.5, "relative_mde": 0.05}, {"baseline_mean": 0.1, "relative_mde": 0.0},
     {"baseline_mean": 0.1, "relative_mde": 0.05, "power": 1.0}, {"baseline_mean": 5.0, "baseline_sd": -1.0,
                                                                 "relative_mde": 0.05}],
)
def test_impossible_plans_are_refused(kwargs):
    with pytest.raises(ExperimentError):
        plan_sample_size(**kwargs)


def test_growthlake_experiments_plan_prints_the_units_per_arm_and_the_days(capsys):
    from orchestration.cli import main

    expected = plan_sample_size(baseline_mean=0.10, relative_mde=0.05, sequential=True, daily_units=10_000)
    assert main(["experiments", "plan", "--baseline", "0.10", "--mde", "0.05", "--sequential",
                 "--daily-units", "10000"]) == 0
    out = capsys.readouterr().out
    assert "always-valid" in out and f"{expected.units_per_control:,}" in out
    assert f"~{expected.days} day(s) at 10,000 a day" in out
    # A mean that is not a rate needs its standard deviation: one line on stderr, exit code 2.
    assert main(["experiments", "plan", "--baseline", "8.0", "--mde", "0.05"]) == 2
    assert "--sd" in capsys.readouterr().err

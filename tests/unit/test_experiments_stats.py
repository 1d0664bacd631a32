"""Experiment statistics: the error rates and interval coverages a decision-maker relies on.

Every simulation is seeded and vectorised: the data of all simulated experiments are drawn at
once, then each experiment is analysed with the public functions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from growth_loops.experiments import (
    AlwaysValidMonitor,
    CupedEstimate,
    ExperimentError,
    analyze,
    chance_to_win,
    cuped,
    default_tau2,
    relative_lift,
    running_p_values,
    sequential_test,
    srm_test,
    welch,
)

N_ARM = 2000
SIMS = 2000
LOGNORMAL_SIGMA = 1.0


def lognormal_mean(mu: float) -> float:
    return math.exp(mu + LOGNORMAL_SIGMA**2 / 2)


def draw(kind: str, rng: np.random.Generator, size: tuple[int, ...], *, effect: float = 0.0) -> np.ndarray:
    """Per-unit values: 'binary' converts at 10% (+effect), 'lognormal' has mu = effect (skewed)."""
    if kind == "binary":
        return (rng.random(size) < 0.10 + effect).astype(np.float64)
    return rng.lognormal(effect, LOGNORMAL_SIGMA, size)


def true_means(kind: str, effect: float) -> tuple[float, float]:
    if kind == "binary":
        return 0.10, 0.10 + effect
    return lognormal_mean(0.0), lognormal_mean(effect)


# -- fixed-horizon estimates -----------------------------------------------------------------


def test_welch_equals_scipy_welch_t_test():
    rng = np.random.default_rng(7)
    control, treatment = rng.lognormal(0, 1, 300), rng.lognormal(0.2, 1.3, 500)
    result = welch(control, treatment, alpha=0.1)
    reference = stats.ttest_ind(treatment, control, equal_var=False)
    low, high = reference.confidence_interval(confidence_level=0.9)
    assert result.estimate == pytest.approx(treatment.mean() - control.mean())
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert (result.n_control, result.n_treatment) == (300, 500)
    assert result.significant == (result.p_value < 0.1)
    assert result.to_dict()["significant"] == result.significant


@pytest.mark.parametrize("kind", ["binary", "lognormal"])
def test_welch_false_positive_rate_under_aa_is_alpha(kind):
    rng = np.random.default_rng(101)
    control, treatment = draw(kind, rng, (SIMS, N_ARM)), draw(kind, rng, (SIMS, N_ARM))
    rejections = np.mean([welch(c, t).significant for c, t in zip(control, treatment, strict=True)])
    assert abs(rejections - 0.05) <= 0.015


@pytest.mark.parametrize(("kind", "effect"), [("binary", 0.01), ("lognormal", 0.05)])
def test_welch_and_relative_lift_intervals_cover_the_true_effect_95_percent(kind, effect):
    rng = np.random.default_rng(202)
    control, treatment = draw(kind, rng, (SIMS, N_ARM)), draw(kind, rng, (SIMS, N_ARM), effect=effect)
    mean_c, mean_t = true_means(kind, effect)
    true_diff, true_lift = mean_t - mean_c, mean_t / mean_c - 1
    absolute = [welch(c, t) for c, t in zip(control, treatment, strict=True)]
    relative = [relative_lift(c, t) for c, t in zip(control, treatment, strict=True)]
    assert abs(np.mean([e.ci_low <= true_diff <= e.ci_high for e in absolute]) - 0.95) <= 0.025
    assert abs(np.mean([e.ci_low <= true_lift <= e.ci_high for e in relative]) - 0.95) <= 0.025
    # the ratio of means is biased by O(1/n) (about +0.005 for the binary case); far below its noise
    assert np.mean([e.estimate for e in relative]) == pytest.approx(true_lift, abs=0.015)


def test_relative_lift_is_the_ratio_of_means_minus_one():
    result = relative_lift([1.0, 3.0, 2.0, 2.0], [3.0, 2.0, 2.0, 3.0])
    assert result.estimate == pytest.approx(0.25)
    assert result.ci_low < 0.25 < result.ci_high


# -- sample-ratio mismatch -------------------------------------------------------------------


def test_srm_flags_a_one_percent_imbalance_at_200k_and_not_a_balanced_split():
    assert srm_test([101_000, 99_000], [0.5, 0.5]).flagged  # 50.5 / 49.5
    balanced = srm_test([100_000, 100_000], [0.5, 0.5])
    assert not balanced.flagged and balanced.p_value == pytest.approx(1.0) and balanced.chi2 == 0
    three = srm_test([20_300, 29_700, 50_000], [0.2, 0.3, 0.5])
    assert not three.flagged and three.p_value == pytest.approx(
        stats.chisquare([20_300, 29_700, 50_000], [20_000, 30_000, 50_000]).pvalue
    )


def test_srm_false_flag_rate_on_correct_assignment_is_about_one_in_a_thousand():
    rng = np.random.default_rng(303)
    control = rng.binomial(200_000, 0.5, size=20_000)
    flags = np.mean([srm_test([int(c), 200_000 - int(c)], [0.5, 0.5]).flagged for c in control])
    assert 0.0002 <= flags <= 0.0025


# -- CUPED -----------------------------------------------------------------------------------


def test_cuped_reduces_variance_and_still_covers_the_truth():
    rng = np.random.default_rng(404)
    effect, rho = 0.1, 0.7
    xc, xt = rng.normal(size=(SIMS // 2, N_ARM)), rng.normal(size=(SIMS // 2, N_ARM))
    noise = math.sqrt(1 - rho**2)
    yc = 5 + rho * xc + noise * rng.normal(size=xc.shape)
    yt = 5 + effect + rho * xt + noise * rng.normal(size=xt.shape)
    adjusted = [cuped(*arms) for arms in zip(yc, xc, yt, xt, strict=True)]
    raw = [welch(c, t) for c, t in zip(yc, yt, strict=True)]
    assert isinstance(adjusted[0], CupedEstimate)
    assert np.mean([a.variance_reduction for a in adjusted]) == pytest.approx(rho**2, abs=0.03)
    assert all(a.std_error < r.std_error for a, r in zip(adjusted, raw, strict=True))
    assert abs(np.mean([a.ci_low <= effect <= a.ci_high for a in adjusted]) - 0.95) <= 0.025
    assert np.mean([a.estimate for a in adjusted]) == pytest.approx(effect, abs=0.005)
    # the adjusted estimate varies less across experiments, not only on paper
    assert np.var([a.estimate for a in adjusted]) < 0.65 * np.var([r.estimate for r in raw])


def test_cuped_with_an_unrelated_covariate_changes_nothing_much():
    rng = np.random.default_rng(405)
    yc, yt = rng.lognormal(0, 1, N_ARM), rng.lognormal(0, 1, N_ARM)
    result = cuped(yc, rng.normal(size=N_ARM), yt, rng.normal(size=N_ARM))
    assert abs(result.variance_reduction) < 0.01
    assert result.mean_control == pytest.approx(yc.mean()) and result.mean_treatment == pytest.approx(yt.mean())
    constant = cuped(yc, np.ones(N_ARM), yt, np.ones(N_ARM))
    assert constant.theta == 0 and constant.estimate == pytest.approx(welch(yc, yt).estimate)


# -- chance to win ---------------------------------------------------------------------------


def test_chance_to_win_is_a_coin_flip_under_aa_and_confident_under_a_clear_effect():
    rng = np.random.default_rng(505)
    control, treatment = draw("binary", rng, (1000, N_ARM)), draw("binary", rng, (1000, N_ARM))
    assert np.mean([chance_to_win(c, t) for c, t in zip(control, treatment, strict=True)]) == pytest.approx(
        0.5, abs=0.03
    )
    lifted = draw("binary", rng, (200, N_ARM), effect=0.03)
    wins = [chance_to_win(c, t) for c, t in zip(control[:200], lifted, strict=True)]
    assert np.mean(wins) > 0.95 and np.median(wins) > 0.99
    assert chance_to_win(lifted[0], control[0]) == pytest.approx(1 - chance_to_win(control[0], lifted[0]))


def test_monte_carlo_chance_to_win_agrees_with_the_closed_form_and_is_seeded():
    rng = np.random.default_rng(506)
    control, treatment = draw("binary", rng, (N_ARM,)), draw("binary", rng, (N_ARM,), effect=0.01)
    closed = chance_to_win(control, treatment)
    beta = chance_to_win(control, treatment, draws=200_000)
    assert beta == pytest.approx(closed, abs=0.01)
    assert beta == chance_to_win(control, treatment, draws=200_000)
    skewed_c, skewed_t = rng.lognormal(0, 1, N_ARM), rng.lognormal(0.05, 1, N_ARM)
    assert chance_to_win(skewed_c, skewed_t, draws=200_000) == pytest.approx(
        chance_to_win(skewed_c, skewed_t), abs=0.01
    )


# -- always-valid sequential test ------------------------------------------------------------

LOOKS = 20
PER_LOOK = N_ARM // LOOKS  # 100 new units per arm per day


def peek_daily(control: np.ndarray, treatment: np.ndarray) -> tuple[bool, bool, AlwaysValidMonitor]:
    """Whether mSPRT / a naive Welch test ever rejected over the daily looks, and the monitor."""
    monitor = AlwaysValidMonitor(alpha=0.05)
    naive = False
    for day in range(1, LOOKS + 1):
        seen = day * PER_LOOK
        monitor.look(control[:seen], treatment[:seen])
        naive = naive or welch(control[:seen], treatment[:seen]).significant
    return monitor.p_value < 0.05, naive, monitor


def test_mixture_likelihood_ratio_equals_its_defining_integral():
    rng = np.random.default_rng(606)
    control, treatment = rng.normal(0, 1, 400), rng.normal(0.4, 1.5, 300)
    result = sequential_test(control, treatment, tau2=0.02)
    d, v = treatment.mean() - control.mean(), result.std_error**2

    def integrand(theta: float) -> float:  # likelihood of d given theta, times the N(0, tau2) mixing density
        return stats.norm.pdf(d, theta, math.sqrt(v)) * stats.norm.pdf(theta, 0, math.sqrt(0.02))

    mixture, _ = integrate.quad(integrand, -2, 2, points=[0.0, d])
    likelihood_ratio = mixture / stats.norm.pdf(d, 0, math.sqrt(v))
    assert result.log_likelihood_ratio == pytest.approx(math.log(likelihood_ratio), rel=1e-6)
    assert result.p_value == pytest.approx(1 / likelihood_ratio, rel=1e-6)
    assert 0.001 < result.p_value < 1
    # the confidence sequence excludes 0 exactly when the always-valid p-value is below alpha
    for alpha in (0.99 * result.p_value, 1.01 * result.p_value, 0.5):
        at = sequential_test(control, treatment, alpha=alpha, tau2=0.02)
        assert (at.ci_low > 0 or at.ci_high < 0) == (at.p_value <= alpha)
    assert result.tau2 == 0.02
    assert sequential_test(control, treatment).tau2 == pytest.approx(default_tau2(control, treatment))


@pytest.mark.parametrize("kind", ["lognormal", "binary"])
def test_peeking_daily_keeps_msprt_below_alpha_but_not_naive_welch(kind):
    rng = np.random.default_rng(707)
    control, treatment = draw(kind, rng, (500, N_ARM)), draw(kind, rng, (500, N_ARM))
    outcomes = np.array([peek_daily(c, t)[:2] for c, t in zip(control, treatment, strict=True)])
    sequential_rate, naive_rate = outcomes.mean(axis=0)
    assert sequential_rate <= 0.05 + 0.015
    assert naive_rate > 0.05 + 0.015  # why the sequential test exists: peeking inflates Welch's errors
    assert naive_rate > 2 * sequential_rate


def test_msprt_eventually_rejects_a_real_effect_and_its_interval_keeps_covering_it():
    rng = np.random.default_rng(808)
    effect = 0.05  # 10% -> 15% conversion: a fixed-horizon z of about 4.8 at the last look
    control, treatment = draw("binary", rng, (200, N_ARM)), draw("binary", rng, (200, N_ARM), effect=effect)
    results = [peek_daily(c, t) for c, t in zip(control, treatment, strict=True)]
    assert np.mean([rejected for rejected, _, _ in results]) >= 0.9
    covered = [monitor.ci_low <= effect <= monitor.ci_high for _, _, monitor in results]
    assert np.mean(covered) >= 0.95


def test_monitor_keeps_the_running_minimum_and_a_fixed_tau2():
    rng = np.random.default_rng(909)
    control, treatment = rng.normal(0, 1, N_ARM), rng.normal(0.05, 1, N_ARM)
    monitor = AlwaysValidMonitor()
    looks = [monitor.look(control[: d * PER_LOOK], treatment[: d * PER_LOOK]) for d in range(1, LOOKS + 1)]
    fresh = [
        sequential_test(control[: d * PER_LOOK], treatment[: d * PER_LOOK], tau2=monitor.tau2)
        for d in range(1, LOOKS + 1)
    ]
    np.testing.assert_allclose([r.p_value for r in looks], running_p_values([r.p_value for r in fresh]))
    assert all(r.tau2 == looks[0].tau2 for r in looks)
    assert np.all(np.diff([r.ci_high - r.ci_low for r in looks]) <= 0)  # the intersection only narrows
    resumed = AlwaysValidMonitor(
        tau2=monitor.tau2, p_value=looks[9].p_value, ci_low=looks[9].ci_low, ci_high=looks[9].ci_high
    )
    for d in range(11, LOOKS + 1):
        last = resumed.look(control[: d * PER_LOOK], treatment[: d * PER_LOOK])
    assert (last.p_value, last.ci_low, last.ci_high) == pytest.approx(
        (looks[-1].p_value, looks[-1].ci_low, looks[-1].ci_high)
    )


def test_constant_arms_give_no_sequential_evidence():
    zeros = np.zeros(50)
    result = sequential_test(zeros, zeros)
    assert result.p_value == 1.0 and math.isinf(result.ci_low) and math.isinf(result.ci_high)
    monitor = AlwaysValidMonitor()
    monitor.look(zeros, zeros)
    assert monitor.tau2 is None  # not frozen at a useless 0
    monitor.look(np.r_[zeros, 1.0, 0.0], np.r_[zeros, 1.0, 1.0])
    assert monitor.tau2 is not None and monitor.tau2 > 0


# -- bundling --------------------------------------------------------------------------------


def test_analyze_bundles_every_estimate_into_one_flat_record():
    rng = np.random.default_rng(1001)
    pre_c, pre_t = rng.lognormal(0, 1, N_ARM), rng.lognormal(0, 1, N_ARM)
    control, treatment = pre_c * 0.8 + rng.lognormal(0, 1, N_ARM), pre_t * 0.8 + rng.lognormal(0.1, 1, N_ARM)
    result = analyze(control, treatment, metric="revenue_7d", pre_control=pre_c, pre_treatment=pre_t)
    record = result.to_record()
    assert record["metric"] == "revenue_7d"
    assert record["abs_estimate"] == pytest.approx(welch(control, treatment).estimate)
    assert record["rel_p_value"] == pytest.approx(relative_lift(control, treatment).p_value)
    assert record["cuped_ci_low"] == pytest.approx(cuped(control, pre_c, treatment, pre_t).ci_low)
    assert record["cuped_variance_reduction"] > 0.1
    # Chance to win as GrowthBook reports it: on the relative scale; the absolute one is labelled.
    relative = relative_lift(control, treatment)
    assert record["chance_to_win"] == pytest.approx(stats.norm.cdf(relative.estimate / relative.std_error))
    assert record["chance_to_win_scale"] == "relative"
    assert record["abs_chance_to_win"] == pytest.approx(chance_to_win(control, treatment))
    assert record["cuped_rel_std_error"] < record["rel_std_error"]  # CUPED narrows the relative lift too
    assert record["seq_p_value"] == pytest.approx(sequential_test(control, treatment).p_value)
    assert all(value is None or isinstance(value, (str, int, float, bool)) for value in record.values())

    no_conversions = analyze(np.zeros(100), np.r_[np.zeros(99), 1.0], metric="upgraded")
    bare = no_conversions.to_record()
    assert no_conversions.relative is None and no_conversions.cuped is None
    assert bare.keys() == record.keys() and bare["rel_estimate"] is None and bare["cuped_theta"] is None


# -- bad inputs ------------------------------------------------------------------------------

GOOD = np.array([0.0, 1.0, 1.0, 0.0])


@pytest.mark.parametrize(
    ("call", "subject"),
    [
        (lambda: welch([], GOOD), "control"),
        (lambda: welch(GOOD, [1.0]), "treatment"),
        (lambda: welch(GOOD, [1.0, float("nan")]), "treatment"),
        (lambda: welch(GOOD, np.ones((2, 2))), "treatment"),
        (lambda: welch(GOOD, ["a", "b"]), "treatment"),
        (lambda: welch(GOOD, GOOD, alpha=0.0), "alpha"),
        (lambda: welch(GOOD, GOOD, alpha=1.0), "alpha"),
        (lambda: relative_lift(GOOD, GOOD, alpha=1.5), "alpha"),
        (lambda: relative_lift(np.zeros(4), GOOD), "control"),
        (lambda: cuped(GOOD, GOOD[:3], GOOD, GOOD), "control_x"),
        (lambda: cuped(GOOD, GOOD, GOOD, GOOD, alpha=-0.1), "alpha"),
        (lambda: chance_to_win(GOOD, GOOD, draws=0), "draws"),
        (lambda: sequential_test(GOOD, GOOD, tau2=-1.0), "tau2"),
        (lambda: sequential_test([], []), "control"),
        (lambda: AlwaysValidMonitor(alpha=2), "alpha"),
        (lambda: running_p_values([0.5, 1.2]), "p_values"),
        (lambda: srm_test([100, 100], [0.5, 0.4]), "expected_weights"),
        (lambda: srm_test([100, -1], [0.5, 0.5]), "observed_counts"),
        (lambda: srm_test([100, 100, 100], [0.5, 0.5]), "observed_counts"),
        (lambda: srm_test([0, 0], [0.5, 0.5]), "observed_counts"),
        (lambda: srm_test([10, 10], [0.5, 0.5], threshold=0), "threshold"),
        (lambda: analyze(GOOD, GOOD, metric=""), "metric"),
        (lambda: analyze(GOOD, GOOD, metric="m", pre_control=GOOD), "pre-period"),
        (lambda: analyze(GOOD, GOOD[:1], metric="m"), "treatment"),
    ],
)
def test_bad_inputs_raise_experiment_error_naming_the_culprit(call, subject):
    with pytest.raises(ExperimentError) as info:
        call()
    assert info.value.subject == subject
    assert isinstance(info.value, ValueError)

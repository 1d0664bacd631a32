"""Analysis of one metric of a control-versus-treatment experiment from per-unit values.

Every function takes one value per unit and arm (numpy arrays or anything array-like; a binary
metric is a 0/1 array, a unit that did not convert is a 0, not a missing value) and returns a
frozen dataclass. Nothing here does I/O; the pipeline passes arrays in and writes
:meth:`MetricResult.to_record` rows out.

* :func:`welch` — difference in means, Welch-Satterthwaite t interval;
* :func:`relative_lift` — ``mean_t / mean_c - 1`` with a delta-method normal interval;
* :func:`cuped` — the difference adjusted by a pre-period covariate (less variance, same truth);
* :func:`chance_to_win` — Bayesian probability that the treatment mean is the larger;
* :func:`sequential_test` / :class:`AlwaysValidMonitor` — mSPRT, safe to peek at every day;
* :func:`srm_test` — sample-ratio mismatch of the assignment counts;
* :func:`analyze` — all of the above for one metric, flattened into one results-table row.

Only :func:`sequential_test` (and the monitor) stays valid when results are looked at
repeatedly and the experiment is stopped on a significant look; the fixed-horizon p-values of
:func:`welch`, :func:`relative_lift` and :func:`cuped` are valid only at the planned end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from numbers import Integral, Real
from typing import Any, cast

import numpy as np
from scipy import special

from growth_loops.experiments import effects
from growth_loops.experiments.errors import ExperimentError

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MIXING_EFFECT_SIZE",
    "SRM_THRESHOLD",
    "AlwaysValidMonitor",
    "CupedEstimate",
    "Estimate",
    "MetricResult",
    "SequentialResult",
    "SrmResult",
    "analyze",
    "chance_to_win",
    "cuped",
    "default_tau2",
    "relative_lift",
    "running_p_values",
    "sequential_test",
    "srm_test",
    "welch",
]

DEFAULT_ALPHA = 0.05
SRM_THRESHOLD = 0.001
"""SRM p-value below which the assignment counts are flagged (the industry-standard 0.001)."""

DEFAULT_MIXING_EFFECT_SIZE = 0.1
"""Default mSPRT mixing scale, in pooled standard deviations of the metric: ``tau = 0.1 * sd``.

With ``tau2 = 0.01 * var`` the confidence sequence is narrowest at about 1,600 units per arm,
and within roughly 20% of the narrowest achievable width anywhere from ~200 to ~100,000 units
per arm, which covers the experiments this lake runs.
"""

_WEIGHT_TOLERANCE = 1e-6


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A treatment-versus-control estimate with its two-sided ``1 - alpha`` interval.

    Attributes:
        estimate: The effect: a difference in means, or a relative lift for :func:`relative_lift`.
        ci_low: Lower end of the interval.
        ci_high: Upper end of the interval.
        p_value: Two-sided p-value of "no effect" (fixed-horizon: valid at one planned look).
        std_error: Standard error of ``estimate``.
        n_control: Units in the control arm.
        n_treatment: Units in the treatment arm.
        mean_control: Raw mean of the control arm.
        mean_treatment: Raw mean of the treatment arm.
        alpha: The interval's miss rate (0.05 for a 95% interval).
    """

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    std_error: float
    n_control: int
    n_treatment: int
    mean_control: float
    mean_treatment: float
    alpha: float

    @property
    def significant(self) -> bool:
        """Whether ``p_value < alpha`` (equivalently, the interval excludes no effect)."""
        return self.p_value < self.alpha

    def to_dict(self) -> dict[str, Any]:
        """All fields plus ``significant``, as plain Python values."""
        return {**asdict(self), "significant": self.significant}


@dataclass(frozen=True)
class CupedEstimate(Estimate):
    """A CUPED-adjusted difference in means.

    ``estimate`` and its interval are adjusted; ``mean_control`` and ``mean_treatment`` stay the
    raw (unadjusted) means.

    Attributes:
        theta: The regression coefficient of the metric on the pre-period covariate.
        variance_reduction: ``1 - var(adjusted) / var(unadjusted)`` of the difference; the
            sample-size saving (0 when the covariate carries no information).
    """

    theta: float
    variance_reduction: float


@dataclass(frozen=True)
class SrmResult:
    """Outcome of a sample-ratio-mismatch chi-squared test.

    Attributes:
        p_value: Probability of counts at least this unbalanced if assignment worked.
        chi2: Pearson's chi-squared statistic (``len(counts) - 1`` degrees of freedom).
        flagged: Whether ``p_value < threshold``: the assignment or the logging is broken and
            no metric of the experiment should be trusted until the cause is found.
    """

    p_value: float
    chi2: float
    flagged: bool


@dataclass(frozen=True)
class SequentialResult:
    """An always-valid (mSPRT) test of the difference in means at one look.

    Attributes:
        estimate: Difference in means, treatment minus control.
        ci_low: Lower end of the always-valid interval (confidence sequence).
        ci_high: Upper end of the always-valid interval.
        p_value: Always-valid p-value, ``min(1, 1 / likelihood ratio)`` (a monitor reports the
            running minimum over its looks).
        log_likelihood_ratio: Log of the mixture likelihood ratio against "no difference".
        tau2: Variance of the normal mixing distribution over the difference.
        std_error: Standard error of ``estimate``.
        n_control: Units in the control arm.
        n_treatment: Units in the treatment arm.
        alpha: Miss rate of the interval and the test.
    """

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    log_likelihood_ratio: float
    tau2: float
    std_error: float
    n_control: int
    n_treatment: int
    alpha: float

    @property
    def significant(self) -> bool:
        """Whether ``p_value < alpha``; safe to act on at any look."""
        return self.p_value < self.alpha

    def to_dict(self) -> dict[str, Any]:
        """All fields plus ``significant``, as plain Python values."""
        return {**asdict(self), "significant": self.significant}


@dataclass(frozen=True)
class MetricResult:
    """Every analysis of one metric of one experiment.

    The relative effect, its interval, its chance to win and the CUPED-adjusted relative effect
    are GrowthBook's (``experiments.effects``, compared with ``gbstats`` in the tests); the
    absolute ones are labelled ``abs_`` in the record.

    Attributes:
        metric: The metric's name.
        absolute: Difference in means (Welch), or in ratios for a ratio metric.
        relative: Relative lift, or None when the control mean is 0 (the lift is undefined).
        cuped: CUPED-adjusted difference, or None when no pre-period values were given.
        cuped_relative: CUPED-adjusted relative lift (GrowthBook's regression adjustment), or None.
        chance_to_win: Probability that the treatment is better, on the relative scale as
            GrowthBook reports it (the absolute one when the relative lift is undefined).
        abs_chance_to_win: The same probability from the absolute difference.
        sequential: Always-valid test at this look.
        kind: ``mean`` or ``ratio``.
    """

    metric: str
    absolute: Estimate
    relative: Estimate | None
    cuped: CupedEstimate | None
    chance_to_win: float
    sequential: SequentialResult
    cuped_relative: Estimate | None = None
    abs_chance_to_win: float | None = None
    kind: str = "mean"

    def to_record(self) -> dict[str, Any]:
        """One flat row for the results table; the caller adds the experiment id, day, etc.

        The keys are the same whether or not the relative lift or CUPED could be computed
        (their values are then None), so every row fits one table schema.
        ``rel_p_value_adjusted`` is None here: the loop runtime fills it across a loop's metrics
        (Holm).
        """
        absolute = self.absolute
        record: dict[str, Any] = {
            "metric": self.metric,
            "kind": self.kind,
            "alpha": absolute.alpha,
            "n_control": absolute.n_control,
            "n_treatment": absolute.n_treatment,
            "mean_control": absolute.mean_control,
            "mean_treatment": absolute.mean_treatment,
        }
        for prefix, estimate in (("abs", absolute), ("rel", self.relative), ("cuped", self.cuped),
                                 ("cuped_rel", self.cuped_relative)):
            for field in ("estimate", "ci_low", "ci_high", "p_value", "std_error", "significant"):
                record[f"{prefix}_{field}"] = None if estimate is None else getattr(estimate, field)
        record["cuped_theta"] = None if self.cuped is None else self.cuped.theta
        record["cuped_variance_reduction"] = None if self.cuped is None else self.cuped.variance_reduction
        record["chance_to_win"] = self.chance_to_win
        record["chance_to_win_scale"] = "relative" if self.relative is not None else "absolute"
        record["abs_chance_to_win"] = self.abs_chance_to_win
        record["rel_p_value_adjusted"] = None
        sequential = self.sequential
        record.update(
            seq_ci_low=sequential.ci_low,
            seq_ci_high=sequential.ci_high,
            seq_p_value=sequential.p_value,
            seq_tau2=sequential.tau2,
            seq_significant=sequential.significant,
        )
        return record


# -- fixed-horizon estimates -----------------------------------------------------------------


@dataclass(frozen=True)
class _Moments:
    n: int
    mean: float
    var: float  # sample variance, ddof=1


def welch(
    control: Sequence[float] | np.ndarray, treatment: Sequence[float] | np.ndarray, *, alpha: float = DEFAULT_ALPHA
) -> Estimate:
    """Difference in means (treatment - control) with Welch's unequal-variance t interval.

    The standard error is ``sqrt(s_t²/n_t + s_c²/n_c)`` and the degrees of freedom are
    Welch-Satterthwaite's. When both arms are constant the standard error is 0: the interval is
    the point estimate and the p-value is 1 if the means are equal, else 0.

    Args:
        control: One value per control unit (at least 2, all finite).
        treatment: One value per treatment unit (at least 2, all finite).
        alpha: Two-sided miss rate, ``0 < alpha < 1``.

    Returns:
        The difference in means as an :class:`Estimate`.

    Raises:
        ExperimentError: (a ``ValueError``) when an arm has fewer than 2 values, is not
            one-dimensional, holds a non-finite value, or ``alpha`` is outside ``(0, 1)``.
    """
    _check_alpha(alpha)
    return _welch(_moments(_values("control", control)), _moments(_values("treatment", treatment)), alpha)


def relative_lift(
    control: Sequence[float] | np.ndarray, treatment: Sequence[float] | np.ndarray, *, alpha: float = DEFAULT_ALPHA
) -> Estimate:
    """Relative lift ``mean_t / mean_c - 1`` with GrowthBook's delta-method interval.

    The variance of the ratio of the two independent means is, to first order,
    ``s_t² / (n_t m_c²) + m_t² s_c² / (n_c m_c⁴)``; the interval is ``lift ± t * se`` with
    Welch–Satterthwaite degrees of freedom, as ``gbstats``' two-sided t-test on the relative
    scale (0/1 values use the binomial variance ``p (1 - p)``, as its proportion statistic). The
    ratio is skewed in small samples; trust the interval once each arm has a few hundred units
    (and, for a binary metric, a few dozen conversions).

    Args:
        control: One value per control unit (at least 2, all finite, mean not 0).
        treatment: One value per treatment unit (at least 2, all finite).
        alpha: Two-sided miss rate, ``0 < alpha < 1``.

    Returns:
        The relative lift as an :class:`Estimate` (0.05 means +5%).

    Raises:
        ExperimentError: when an input is malformed (see :func:`welch`), the control mean is
            0 (the relative lift is undefined) or an arm has no variance.
    """
    _check_alpha(alpha)
    c, t = _values("control", control), _values("treatment", treatment)
    return _estimate(effects.effect(effects.summarize(c), effects.summarize(t), scale="relative", alpha=alpha))


def _estimate(e: effects.Effect) -> Estimate:
    return Estimate(e.estimate, e.ci_low, e.ci_high, e.p_value, e.std_error, e.n_control, e.n_treatment,
                    e.mean_control, e.mean_treatment, e.alpha)


def cuped(
    control_y: Sequence[float] | np.ndarray,
    control_x: Sequence[float] | np.ndarray,
    treatment_y: Sequence[float] | np.ndarray,
    treatment_x: Sequence[float] | np.ndarray,
    *,
    alpha: float = DEFAULT_ALPHA,
) -> CupedEstimate:
    """Difference in means adjusted with a pre-period covariate (CUPED, Deng et al. 2013).

    ``theta = cov(x, y) / var(x)`` uses the pooled within-arm covariance (each arm centred on
    its own means, so the treatment effect does not leak into theta). Every unit's value becomes
    ``y - theta * (x - mean(x over both arms))`` and :func:`welch` is applied to those. The
    estimate targets the same difference as the unadjusted one, because ``x`` was measured
    before assignment; its variance shrinks by about ``corr(x, y)²``. The uncertainty of theta
    itself is ignored, which is negligible beyond a few hundred units.

    Args:
        control_y: Metric per control unit.
        control_x: Pre-period covariate per control unit, in the same order as ``control_y``
            (e.g. the same metric over the weeks before the experiment; 0 for new units).
        treatment_y: Metric per treatment unit.
        treatment_x: Pre-period covariate per treatment unit, aligned with ``treatment_y``.
        alpha: Two-sided miss rate, ``0 < alpha < 1``.

    Returns:
        A :class:`CupedEstimate`: the adjusted difference, its interval and p-value, theta and
        the variance reduction achieved.

    Raises:
        ExperimentError: when an input is malformed (see :func:`welch`) or ``x`` and ``y`` of
            an arm differ in length.
    """
    _check_alpha(alpha)
    yc, xc = _values("control_y", control_y), _values("control_x", control_x)
    yt, xt = _values("treatment_y", treatment_y), _values("treatment_x", treatment_x)
    for arm, y, x in (("control", yc, xc), ("treatment", yt, xt)):
        if len(y) != len(x):
            raise ExperimentError(
                f"{arm}_x",
                f"it has {len(x)} values but {arm}_y has {len(y)}",
                "Give exactly one pre-period value per unit, aligned with the metric values.",
            )
    dxc, dxt = xc - xc.mean(), xt - xt.mean()
    sxx = float(dxc @ dxc + dxt @ dxt)
    sxy = float(dxc @ (yc - yc.mean()) + dxt @ (yt - yt.mean()))
    theta = sxy / sxx if sxx > 0 else 0.0  # a constant covariate carries no information
    x_mean = (xc.sum() + xt.sum()) / (len(xc) + len(xt))
    raw = _welch(_moments(yc), _moments(yt), alpha)
    adjusted = _welch(_moments(yc - theta * (xc - x_mean)), _moments(yt - theta * (xt - x_mean)), alpha)
    reduction = 1.0 - (adjusted.std_error / raw.std_error) ** 2 if raw.std_error > 0 else 0.0
    return CupedEstimate(
        **{**asdict(adjusted), "mean_control": raw.mean_control, "mean_treatment": raw.mean_treatment},
        theta=theta,
        variance_reduction=reduction,
    )


def chance_to_win(
    control: Sequence[float] | np.ndarray,
    treatment: Sequence[float] | np.ndarray,
    *,
    draws: int | None = None,
    seed: int = 0,
) -> float:
    """Bayesian probability that the treatment's true mean exceeds the control's.

    With ``draws=None`` (the default) the posterior of each mean under a flat prior is taken as
    normal, ``N(mean, s²/n)``, so the answer is the closed form ``Φ((m_t - m_c) / se)`` with the
    Welch standard error: deterministic and fine beyond a few dozen units (or conversions) per
    arm. With ``draws=k`` it is estimated from ``k`` Monte Carlo draws of a seeded generator:
    for a binary (0/1) metric from Beta(1 + conversions, 1 + non-conversions) posteriors
    (uniform Beta(1, 1) prior), better for few conversions; otherwise from the normal posteriors.

    Args:
        control: One value per control unit (at least 2, all finite).
        treatment: One value per treatment unit (at least 2, all finite).
        draws: None for the closed form, or the number of Monte Carlo draws (>= 1).
        seed: Seed of the Monte Carlo generator (same seed, same answer).

    Returns:
        A probability in ``[0, 1]``; 0.5 when the arms are indistinguishable.

    Raises:
        ExperimentError: when an input is malformed (see :func:`welch`) or ``draws`` is not a
            positive integer.
    """
    c, t = _values("control", control), _values("treatment", treatment)
    mc, mt = _moments(c), _moments(t)
    diff = mt.mean - mc.mean
    se = math.sqrt(mc.var / mc.n + mt.var / mt.n)
    if draws is None:
        if se == 0:
            return 0.5 if diff == 0 else float(diff > 0)
        return float(special.ndtr(diff / se))
    if not isinstance(draws, Integral) or isinstance(draws, bool) or draws < 1:
        raise ExperimentError(
            "draws",
            f"expected a positive integer or None, got {draws!r}",
            "Pass e.g. draws=100_000 for a Monte Carlo estimate, or None for the closed form.",
        )
    rng = np.random.default_rng(seed)
    if _is_binary(c) and _is_binary(t):
        sc, st = c.sum(), t.sum()
        control_draws = rng.beta(1 + sc, 1 + mc.n - sc, size=draws)
        treatment_draws = rng.beta(1 + st, 1 + mt.n - st, size=draws)
    else:
        control_draws = rng.normal(mc.mean, math.sqrt(mc.var / mc.n), size=draws)
        treatment_draws = rng.normal(mt.mean, math.sqrt(mt.var / mt.n), size=draws)
    return float(np.mean(treatment_draws > control_draws))


def srm_test(
    observed_counts: Sequence[int],
    expected_weights: Sequence[float],
    *,
    threshold: float = SRM_THRESHOLD,
) -> SrmResult:
    """Sample-ratio mismatch: do the units per variation match the configured weights?

    Pearson's chi-squared goodness-of-fit test with ``k - 1`` degrees of freedom. A flagged
    experiment has broken assignment or logging (bots, redirects, a crash in one arm), which
    biases every metric; it is not a property of the treatment effect.

    Args:
        observed_counts: Units assigned (or exposed) per variation, control first.
        expected_weights: Configured weight of each variation, summing to 1.
        threshold: Flag when the p-value is below this, ``0 < threshold < 1``.

    Returns:
        An :class:`SrmResult`.

    Raises:
        ExperimentError: when a count is negative or not an integer, all counts are 0, the
            weights are not positive and summing to 1, the lengths differ, or the threshold is
            outside ``(0, 1)``.
    """
    if not isinstance(threshold, Real) or not (0.0 < threshold < 1.0):
        raise ExperimentError(
            "threshold",
            f"must be a number with 0 < threshold < 1, got {threshold!r}",
            f"Use a small probability such as the default {SRM_THRESHOLD}.",
        )
    counts = list(observed_counts)
    weights = list(expected_weights)
    if len(counts) < 2 or len(counts) != len(weights):
        raise ExperimentError(
            "observed_counts",
            f"{len(counts)} counts for {len(weights)} weights; need one count per variation and at least 2",
            "Pass the units per variation and the configured weights in the same order.",
        )
    if any(not isinstance(n, Integral) or isinstance(n, bool) or n < 0 for n in counts) or sum(counts) == 0:
        raise ExperimentError(
            "observed_counts",
            f"expected non-negative integer counts, not all 0, got {counts!r}",
            "Count the distinct units assigned to each variation.",
        )
    if (
        any(not isinstance(w, Real) or not math.isfinite(w) or w <= 0 for w in weights)
        or abs(math.fsum(weights) - 1.0) > _WEIGHT_TOLERANCE
    ):
        raise ExperimentError(
            "expected_weights",
            f"expected positive weights summing to 1, got {weights!r}",
            "Pass the experiment's configured variation weights (drop variations with weight 0).",
        )
    observed = np.asarray(counts, dtype=np.float64)
    expected = observed.sum() * np.asarray(weights, dtype=np.float64)
    chi2 = float(np.sum((observed - expected) ** 2 / expected))
    p_value = float(special.chdtrc(len(counts) - 1, chi2))
    return SrmResult(p_value=p_value, chi2=chi2, flagged=p_value < threshold)


# -- always-valid inference ------------------------------------------------------------------


def default_tau2(control: Sequence[float] | np.ndarray, treatment: Sequence[float] | np.ndarray) -> float:
    """The default mSPRT mixing variance: ``(DEFAULT_MIXING_EFFECT_SIZE * pooled sd)²``.

    Args:
        control: One value per control unit (at least 2, all finite).
        treatment: One value per treatment unit (at least 2, all finite).

    Returns:
        ``0.01 * pooled variance`` with the default effect size; 0 when both arms are constant.

    Raises:
        ExperimentError: when an input is malformed (see :func:`welch`).
    """
    return _default_tau2(_moments(_values("control", control)), _moments(_values("treatment", treatment)))


def sequential_test(
    control: Sequence[float] | np.ndarray,
    treatment: Sequence[float] | np.ndarray,
    *,
    alpha: float = DEFAULT_ALPHA,
    tau2: float | None = None,
) -> SequentialResult:
    """Always-valid test of the difference in means: the mixture SPRT of Johari, Pekelis & Walsh (2017).

    With ``d`` the difference in means and ``V`` its variance (``s_t²/n_t + s_c²/n_c``, plugged
    in), the likelihood ratio of "the difference is drawn from N(0, tau2)" against "it is 0" is::

        Λ = sqrt(V / (V + tau2)) * exp(d² tau2 / (2 V (V + tau2)))

    The always-valid p-value is ``min(1, 1/Λ)``, and the confidence sequence is
    ``d ± sqrt(V (V + tau2) / tau2 * (2 log(1/alpha) + log((V + tau2) / V)))``, which excludes 0
    exactly when the p-value is at most alpha. When both arms are constant there is no variance
    estimate: the p-value is 1 and the interval unbounded. Both stay valid however often they are looked at,
    provided ``tau2`` is the same at every look: use :class:`AlwaysValidMonitor` (which fixes it
    at its first look) or pass a stored ``tau2``. The guarantee is asymptotic (normal means,
    estimated variance), so treat looks with only a handful of units per arm as indicative.

    Args:
        control: Every control unit's value so far.
        treatment: Every treatment unit's value so far.
        alpha: Two-sided miss rate, ``0 < alpha < 1``.
        tau2: Mixing variance over the difference, ``> 0``; None for :func:`default_tau2`
            (0.1 pooled standard deviations, squared), computed from this look's data.

    Returns:
        A :class:`SequentialResult` at this look.

    Raises:
        ExperimentError: when an input is malformed (see :func:`welch`) or ``tau2`` is not a
            positive finite number.
    """
    _check_alpha(alpha)
    _check_tau2(tau2)
    mc, mt = _moments(_values("control", control)), _moments(_values("treatment", treatment))
    return _msprt(mc, mt, alpha, _default_tau2(mc, mt) if tau2 is None else float(tau2))


class AlwaysValidMonitor:
    """Running always-valid inference over the successive looks at one experiment's metric.

    Each :meth:`look` takes every unit observed so far; the monitor keeps the running minimum of
    the mSPRT p-values and the running intersection of the confidence sequences, which is what
    makes stopping at the first significant look safe. ``tau2`` is fixed at the first look
    whose data are not constant (unless given) and kept for every later look. To resume across
    processes, store ``tau2``, ``p_value``, ``ci_low`` and ``ci_high`` and pass them back in.

    The intersection can come out empty (``ci_low > ci_high``); under the model that happens with
    probability at most alpha, and in practice it means the effect is not stable over time.
    """

    def __init__(
        self,
        *,
        alpha: float = DEFAULT_ALPHA,
        tau2: float | None = None,
        p_value: float = 1.0,
        ci_low: float = -math.inf,
        ci_high: float = math.inf,
    ) -> None:
        _check_alpha(alpha)
        _check_tau2(tau2)
        self.alpha = alpha
        self.tau2 = None if tau2 is None else float(tau2)
        self.p_value = float(p_value)
        self.ci_low = float(ci_low)
        self.ci_high = float(ci_high)
        self.looks = 0

    def look(self, control: Sequence[float] | np.ndarray, treatment: Sequence[float] | np.ndarray) -> SequentialResult:
        """Analyse the data at this look and fold it into the running p-value and interval.

        Args:
            control: Every control unit's value so far (not only the new ones).
            treatment: Every treatment unit's value so far.

        Returns:
            This look's result with the running p-value and the running interval.

        Raises:
            ExperimentError: when an input is malformed (see :func:`welch`).
        """
        mc, mt = _moments(_values("control", control)), _moments(_values("treatment", treatment))
        tau2 = self.tau2
        if tau2 is None:
            tau2 = _default_tau2(mc, mt)
            if tau2 > 0:
                self.tau2 = tau2
        result = _msprt(mc, mt, self.alpha, tau2)
        self.looks += 1
        self.p_value = min(self.p_value, result.p_value)
        self.ci_low = max(self.ci_low, result.ci_low)
        self.ci_high = min(self.ci_high, result.ci_high)
        return replace(result, p_value=self.p_value, ci_low=self.ci_low, ci_high=self.ci_high)


def running_p_values(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Always-valid p-values over successive looks: the running minimum of each look's mSPRT p-value.

    Args:
        p_values: The :attr:`SequentialResult.p_value` of each look, in time order (computed
            with one fixed ``tau2``).

    Returns:
        A float64 array of the same length, non-increasing.

    Raises:
        ExperimentError: when a p-value is outside ``[0, 1]``.
    """
    values = np.asarray(p_values, dtype=np.float64)
    if values.ndim != 1 or np.any(~((values >= 0) & (values <= 1))):
        raise ExperimentError(
            "p_values",
            "expected a one-dimensional sequence of probabilities in [0, 1]",
            "Pass the p-value of each look in time order.",
        )
    return np.minimum.accumulate(values) if values.size else values


# -- everything for one metric ---------------------------------------------------------------


def analyze(
    control: Sequence[float] | np.ndarray,
    treatment: Sequence[float] | np.ndarray,
    *,
    metric: str,
    pre_control: Sequence[float] | np.ndarray | None = None,
    pre_treatment: Sequence[float] | np.ndarray | None = None,
    denominator_control: Sequence[float] | np.ndarray | None = None,
    denominator_treatment: Sequence[float] | np.ndarray | None = None,
    alpha: float = DEFAULT_ALPHA,
    tau2: float | None = None,
) -> MetricResult:
    """Run every analysis of one metric: absolute, relative, CUPED, chance to win, sequential.

    Args:
        control: One value per control unit (the numerator, for a ratio metric).
        treatment: One value per treatment unit.
        metric: The metric's name, carried into the record.
        pre_control: Pre-period covariate per control unit, aligned with ``control``; give it
            together with ``pre_treatment`` to get CUPED estimates (mean metrics only).
        pre_treatment: Pre-period covariate per treatment unit, aligned with ``treatment``.
        denominator_control: For a ratio metric (sum of values / sum of denominators, e.g.
            revenue per active user), the denominator per control unit; with
            ``denominator_treatment``. The delta method gives the intervals.
        denominator_treatment: The denominator per treatment unit.
        alpha: Two-sided miss rate, ``0 < alpha < 1``.
        tau2: mSPRT mixing variance; pass the ``seq_tau2`` stored at the experiment's first look
            so every look uses the same one (None: :func:`default_tau2` of this look's data).

    Returns:
        A :class:`MetricResult`; its relative lift is None when the control mean is 0.

    Raises:
        ExperimentError: when an input is malformed, the metric name is empty, or only one of
            a pair of arrays (pre-period, denominator) is given.
    """
    if not isinstance(metric, str) or not metric:
        raise ExperimentError("metric", f"expected a non-empty name, got {metric!r}", "Pass the metric's name.")
    for pair, (first, second) in (("pre-period", (pre_control, pre_treatment)),
                                  ("denominator", (denominator_control, denominator_treatment))):
        if (first is None) != (second is None):
            raise ExperimentError(pair, f"only one of the two {pair} arrays was given",
                                  f"Pass both (one {pair} value per unit of each arm), or neither.")
    _check_alpha(alpha)
    _check_tau2(tau2)
    c, t = _values("control", control), _values("treatment", treatment)
    ratio = denominator_control is not None and denominator_treatment is not None
    sc: effects.Stats
    st: effects.Stats
    if denominator_control is not None and denominator_treatment is not None:
        sc = effects.RatioStats.of(c, _values("denominator_control", denominator_control))
        st = effects.RatioStats.of(t, _values("denominator_treatment", denominator_treatment))
    else:
        sc, st = effects.summarize(c), effects.summarize(t)
    mc, mt = _Moments(sc.n, sc.mean, sc.variance), _Moments(st.n, st.mean, st.variance)
    if ratio:
        absolute = _estimate(effects.effect(sc, st, scale="absolute", alpha=alpha)) if min(mc.var, mt.var) > 0 \
            else _welch(mc, mt, alpha)
    else:
        mc, mt = _moments(c), _moments(t)
        absolute = _welch(mc, mt, alpha)
    relative = _maybe(lambda: _estimate(effects.effect(sc, st, scale="relative", alpha=alpha)))
    adjusted = adjusted_relative = None
    if pre_control is not None and pre_treatment is not None and not ratio:
        adjusted = cuped(c, pre_control, t, pre_treatment, alpha=alpha)
        pc, pt = _values("pre_control", pre_control), _values("pre_treatment", pre_treatment)
        adjusted_relative = _maybe(lambda: _estimate(effects.cuped_effect(
            effects.CupedStats(effects.summarize(c), effects.MeanStats.of(pc), float(c @ pc)),
            effects.CupedStats(effects.summarize(t), effects.MeanStats.of(pt), float(t @ pt)),
            scale="relative", alpha=alpha)))
    se = math.sqrt(mc.var / mc.n + mt.var / mt.n)
    diff = mt.mean - mc.mean
    abs_ctw = (0.5 if diff == 0 else float(diff > 0)) if se == 0 else float(special.ndtr(diff / se))
    ctw = abs_ctw if relative is None else float(special.ndtr(relative.estimate / relative.std_error))
    return MetricResult(
        metric=metric,
        absolute=absolute,
        relative=relative,
        cuped=adjusted,
        chance_to_win=ctw,
        sequential=_msprt(mc, mt, alpha, _default_tau2(mc, mt) if tau2 is None else float(tau2)),
        cuped_relative=adjusted_relative,
        abs_chance_to_win=abs_ctw,
        kind="ratio" if ratio else "mean",
    )


def _maybe(compute: Callable[[], Estimate]) -> Estimate | None:
    """The estimate, or None where it is undefined (a control mean of 0, an arm without variance)."""
    try:
        return compute()
    except ExperimentError:
        return None


# -- internals -------------------------------------------------------------------------------


def _welch(mc: _Moments, mt: _Moments, alpha: float) -> Estimate:
    diff = mt.mean - mc.mean
    vc, vt = mc.var / mc.n, mt.var / mt.n
    se = math.sqrt(vc + vt)
    if se == 0:
        low = high = diff
        p_value = 1.0 if diff == 0 else 0.0
    else:
        df = (vc + vt) ** 2 / (vc**2 / (mc.n - 1) + vt**2 / (mt.n - 1))
        half = float(special.stdtrit(df, 1.0 - alpha / 2)) * se
        low, high = diff - half, diff + half
        p_value = float(2.0 * special.stdtr(df, -abs(diff) / se))
    return Estimate(diff, low, high, min(p_value, 1.0), se, mc.n, mt.n, mc.mean, mt.mean, alpha)


def _default_tau2(mc: _Moments, mt: _Moments) -> float:
    pooled = ((mc.n - 1) * mc.var + (mt.n - 1) * mt.var) / (mc.n + mt.n - 2)
    return DEFAULT_MIXING_EFFECT_SIZE**2 * pooled


def _msprt(mc: _Moments, mt: _Moments, alpha: float, tau2: float) -> SequentialResult:
    diff = mt.mean - mc.mean
    v = mc.var / mc.n + mt.var / mt.n
    if v == 0 or tau2 == 0:
        # Constant arms (e.g. no conversion yet) give no variance estimate, hence no evidence:
        # report "nothing learnt" rather than a zero-width interval a monitor would keep forever.
        return SequentialResult(diff, -math.inf, math.inf, 1.0, 0.0, tau2, math.sqrt(v), mc.n, mt.n, alpha)
    log_lr = 0.5 * math.log(v / (v + tau2)) + diff**2 * tau2 / (2.0 * v * (v + tau2))
    p_value = math.exp(-log_lr) if log_lr > 0 else 1.0
    half = math.sqrt(v * (v + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + math.log((v + tau2) / v)))
    return SequentialResult(diff, diff - half, diff + half, p_value, log_lr, tau2, math.sqrt(v), mc.n, mt.n, alpha)


def _values(name: str, values: object) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ExperimentError(
            name, f"cannot be read as numbers ({exc})", "Pass one numeric value per unit (0/1 for a binary metric)."
        ) from None
    if array.ndim != 1:
        raise ExperimentError(
            name, f"expected a one-dimensional array, got shape {array.shape}", "Pass one value per unit, flat."
        )
    if array.size < 2:
        raise ExperimentError(
            name,
            f"has {array.size} value(s), but at least 2 units per arm are needed to estimate a variance",
            "Wait until both arms have units, or check the join that built the per-unit values.",
        )
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ExperimentError(
            name,
            f"{bad} of {array.size} values are NaN or infinite",
            "Fill units without activity with 0 (a non-converter is a 0, not missing) or drop "
            "units that must be excluded before the analysis.",
        )
    return array


def _moments(values: np.ndarray) -> _Moments:
    return _Moments(n=int(values.size), mean=float(values.mean()), var=float(values.var(ddof=1)))


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def _check_alpha(alpha: object) -> None:
    # cast: typeshed's numbers.Real declares no __gt__, so mypy cannot put it right of a float's `<`
    if not isinstance(alpha, Real) or isinstance(alpha, bool) or not (0.0 < cast(float, alpha) < 1.0):
        raise ExperimentError(
            "alpha",
            f"must be a number with 0 < alpha < 1, got {alpha!r}",
            "Pass the two-sided miss rate, e.g. alpha=0.05 for 95% intervals.",
        )


def _check_tau2(tau2: object) -> None:
    if tau2 is None:
        return
    if not isinstance(tau2, Real) or isinstance(tau2, bool) or not math.isfinite(tau2) or tau2 <= 0:
        raise ExperimentError(
            "tau2",
            f"the mixing variance must be a positive finite number, got {tau2!r}",
            "Pass the tau2 stored at the experiment's first look, or None for the default.",
        )

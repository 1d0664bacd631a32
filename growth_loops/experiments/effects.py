"""Treatment effects from sufficient statistics, reported the way GrowthBook reports them.

A metric arm is summarized once — :class:`MeanStats` (``n``, sum, sum of squares) for a per-unit
mean, :class:`RatioStats` (numerator and denominator sums and their sum of products) for a ratio
of sums such as revenue per active user, :class:`CupedStats` (the metric and a pre-period
covariate) for a regression-adjusted mean — and every effect is computed from those sums, so a
warehouse query, a loop and a simulation can all feed the same code without per-unit arrays.

:func:`effect` follows GrowthBook's stats engine (``gbstats``) formula by formula:

* the **relative** effect is ``(m_t - m_c) / m_c`` with the delta-method variance
  ``v_t / (m_c² n_t) + m_t² v_c / (m_c⁴ n_c)``; the **absolute** one is ``m_t - m_c`` with
  ``v_t / n_t + v_c / n_c`` (labelled ``scale="absolute"``);
* a ratio metric's per-unit variance is the delta method's
  ``v_num / d² - 2 cov m / d³ + m² v_den / d⁴`` (``m``, ``d``: numerator and denominator means);
* CUPED (regression adjustment) uses ``theta = cov(y, x) / var(x)`` over both arms pooled, the
  adjusted means ``m_y - theta m_x`` and variances ``v_y + theta² v_x - 2 theta cov``, and — on the
  relative scale — divides by the *unadjusted* control mean;
* the frequentist interval and p-value use Student's t with Welch–Satterthwaite degrees of
  freedom; the Bayesian chance to win is ``P(effect > 0)`` under GrowthBook's default flat prior,
  ``Φ(estimate / se)``, with the normal credible interval.

``tests/unit/test_gbstats_parity.py`` compares every number with ``gbstats`` on fixed cases.
:func:`adjust_p_values` (Holm, Benjamini–Hochberg) corrects a loop's metrics for multiplicity and
:func:`growth_loops.experiments.planning.plan_sample_size` answers "how many units do I need".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special

from growth_loops.experiments.errors import ExperimentError

__all__ = [
    "CupedStats",
    "Effect",
    "MeanStats",
    "ProportionStats",
    "RatioStats",
    "Scale",
    "Stats",
    "adjust_p_values",
    "cuped_effect",
    "effect",
    "summarize",
]

Scale = Literal["relative", "absolute"]
PValueAdjustment = Literal["holm", "bh"]


@dataclass(frozen=True)
class MeanStats:
    """Sufficient statistics of a per-unit metric in one arm.

    Attributes:
        n: Units.
        sum: Sum of the units' values.
        sum_squares: Sum of the squared values.
    """

    n: int
    sum: float
    sum_squares: float

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> MeanStats:
        """Summarize one value per unit (0 for a unit that did not convert, never missing)."""
        array = _finite("values", values)
        return cls(int(array.size), float(array.sum()), float(array @ array))

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """Sample variance (``n - 1`` in the denominator); 0 below two units."""
        if self.n <= 1:
            return 0.0
        return max((self.sum_squares - self.sum**2 / self.n) / (self.n - 1), 0.0)


@dataclass(frozen=True)
class ProportionStats(MeanStats):
    """Sufficient statistics of a binary (0/1) metric in one arm: its variance is ``p (1 - p)``,
    as GrowthBook's ``ProportionStatistic`` (not the ``n - 1`` sample variance)."""

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> ProportionStats:
        """Summarize one 0/1 value per unit."""
        array = _finite("values", values)
        if not np.all((array == 0) | (array == 1)):
            raise ExperimentError("values", "a proportion needs 0/1 values", "Use MeanStats for other metrics.")
        total = float(array.sum())
        return cls(int(array.size), total, total)

    @property
    def variance(self) -> float:
        p = self.mean
        return p * (1 - p)


def summarize(values: Sequence[float] | np.ndarray) -> MeanStats:
    """:class:`ProportionStats` for 0/1 values, :class:`MeanStats` otherwise (GrowthBook's choice
    between its binomial and count metric statistics)."""
    array = _finite("values", values)
    if np.all((array == 0) | (array == 1)):
        return ProportionStats.of(array)
    return MeanStats.of(array)


@dataclass(frozen=True)
class RatioStats:
    """Sufficient statistics of a ratio metric (sum of numerators / sum of denominators) in one arm.

    Attributes:
        numerator: The numerator per unit (e.g. revenue).
        denominator: The denominator per unit (e.g. 1 when the unit was active).
        sum_products: Sum over units of numerator × denominator.
    """

    numerator: MeanStats
    denominator: MeanStats
    sum_products: float

    def __post_init__(self) -> None:
        if self.numerator.n != self.denominator.n:
            raise ExperimentError("ratio statistics", f"{self.numerator.n} numerators for {self.denominator.n} "
                                  "denominators", "Summarize one numerator and one denominator per unit.")

    @classmethod
    def of(cls, numerator: Sequence[float] | np.ndarray, denominator: Sequence[float] | np.ndarray) -> RatioStats:
        """Summarize one numerator and one denominator per unit, aligned."""
        num, den = _finite("numerator", numerator), _finite("denominator", denominator)
        if num.size != den.size:
            raise ExperimentError("denominator", f"it has {den.size} values but the numerator {num.size}",
                                  "Give one numerator and one denominator per unit.")
        return cls(MeanStats.of(num), MeanStats.of(den), float(num @ den))

    @property
    def n(self) -> int:
        return self.numerator.n

    @property
    def mean(self) -> float:
        """The ratio of sums (0 while the denominators sum to 0)."""
        return self.numerator.sum / self.denominator.sum if self.denominator.sum else 0.0

    @property
    def covariance(self) -> float:
        if self.n <= 1:
            return 0.0
        return (self.sum_products - self.numerator.sum * self.denominator.sum / self.n) / (self.n - 1)

    @property
    def variance(self) -> float:
        """Per-unit variance of the ratio by the delta method (as ``gbstats.RatioStatistic``)."""
        d, m = self.denominator.mean, self.numerator.mean
        if d == 0 or self.n <= 1:
            return 0.0
        return max(self.numerator.variance / d**2 - 2 * self.covariance * m / d**3
                   + m**2 * self.denominator.variance / d**4, 0.0)


Stats = MeanStats | RatioStats


@dataclass(frozen=True)
class CupedStats:
    """A metric and its pre-period covariate in one arm (CUPED / regression adjustment).

    Attributes:
        post: The metric per unit.
        pre: The covariate per unit, measured before assignment (0 for units new to the product).
        sum_products: Sum over units of metric × covariate.
    """

    post: MeanStats
    pre: MeanStats
    sum_products: float

    def __post_init__(self) -> None:
        if self.post.n != self.pre.n:
            raise ExperimentError("CUPED statistics", f"{self.post.n} metric values for {self.pre.n} covariates",
                                  "Give exactly one pre-period value per unit.")

    @classmethod
    def of(cls, post: Sequence[float] | np.ndarray, pre: Sequence[float] | np.ndarray) -> CupedStats:
        """Summarize the metric and its pre-period covariate, one of each per unit, aligned."""
        y, x = _finite("post", post), _finite("pre", pre)
        if y.size != x.size:
            raise ExperimentError("pre", f"it has {x.size} values but the metric {y.size}",
                                  "Give exactly one pre-period value per unit, aligned with the metric.")
        return cls(MeanStats.of(y), MeanStats.of(x), float(y @ x))

    @property
    def n(self) -> int:
        return self.post.n


@dataclass(frozen=True)
class Effect:
    """One treatment-versus-control effect on one scale.

    Attributes:
        scale: ``relative`` (``0.05`` is +5%) or ``absolute`` (in the metric's unit).
        estimate: The effect.
        ci_low: Lower end of the two-sided ``1 - alpha`` confidence interval (Student's t,
            Welch–Satterthwaite degrees of freedom).
        ci_high: Upper end of that interval.
        p_value: Two-sided p-value of "no effect" (fixed horizon: valid at one planned look).
        std_error: Standard error of ``estimate``.
        chance_to_win: Bayesian probability that the effect is positive (flat prior).
        credible_low: Lower end of the ``1 - alpha`` credible interval (normal posterior).
        credible_high: Upper end of the credible interval.
        n_control: Units in control.
        n_treatment: Units in treatment.
        mean_control: Control mean (unadjusted; the ratio of sums for a ratio metric).
        mean_treatment: Treatment mean (unadjusted).
        alpha: The intervals' miss rate.
        theta: The CUPED coefficient, None when not regression-adjusted.
    """

    scale: Scale
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    std_error: float
    chance_to_win: float
    credible_low: float
    credible_high: float
    n_control: int
    n_treatment: int
    mean_control: float
    mean_treatment: float
    alpha: float
    theta: float | None = None

    @property
    def significant(self) -> bool:
        """Whether ``p_value < alpha`` (the interval excludes no effect)."""
        return self.p_value < self.alpha


@dataclass(frozen=True)
class _Arm:
    """What an effect needs of one arm: units, (adjusted) mean, variance, unadjusted mean."""

    n: int
    mean: float
    variance: float
    unadjusted_mean: float


def effect(control: Stats, treatment: Stats, *, scale: Scale = "relative", alpha: float = 0.05) -> Effect:
    """The effect of the treatment on a mean or ratio metric, as GrowthBook computes it.

    Args:
        control: The control arm's :class:`MeanStats` or :class:`RatioStats`.
        treatment: The treatment arm's statistics, of the same kind.
        scale: ``relative`` (GrowthBook's default) or ``absolute``.
        alpha: Two-sided miss rate of the intervals.

    Returns:
        An :class:`Effect`.

    Raises:
        ExperimentError: when an arm has fewer than 2 units or no variance (no interval exists),
            the kinds differ, the scale is unknown, or — on the relative scale — the control
            mean is 0.
    """
    _check(control, treatment, scale, alpha)
    return _effect(_arm(control), _arm(treatment), scale, alpha, theta=None)


def cuped_effect(control: CupedStats, treatment: CupedStats, *, scale: Scale = "relative",
                 alpha: float = 0.05) -> Effect:
    """The CUPED-adjusted effect (GrowthBook's regression adjustment), on either scale.

    ``theta`` is computed over both arms pooled, as ``gbstats.compute_theta`` does; when the
    pooled covariate or metric has no variance the unadjusted effect is returned (``theta`` 0).

    Raises:
        ExperimentError: as :func:`effect`.
    """
    _check(control.post, treatment.post, scale, alpha)
    n = control.n + treatment.n
    joint_post = type(control.post)(n, control.post.sum + treatment.post.sum,
                                    control.post.sum_squares + treatment.post.sum_squares)
    joint_pre = type(control.pre)(n, control.pre.sum + treatment.pre.sum,
                                  control.pre.sum_squares + treatment.pre.sum_squares)
    theta = 0.0
    if joint_pre.variance > 0 and joint_post.variance > 0:
        cov = (control.sum_products + treatment.sum_products - joint_post.sum * joint_pre.sum / n) / (n - 1)
        theta = cov / joint_pre.variance
    if theta == 0.0:
        return _effect(_arm(control.post), _arm(treatment.post), scale, alpha, theta=0.0)
    return _effect(_adjusted(control, theta), _adjusted(treatment, theta), scale, alpha, theta=theta)


def _adjusted(arm: CupedStats, theta: float) -> _Arm:
    cov = (arm.sum_products - arm.post.sum * arm.pre.sum / arm.n) / (arm.n - 1) if arm.n > 1 else 0.0
    variance = arm.post.variance + theta**2 * arm.pre.variance - 2 * theta * cov
    return _Arm(arm.n, arm.post.mean - theta * arm.pre.mean, max(variance, 0.0), arm.post.mean)


def _arm(stats: Stats) -> _Arm:
    return _Arm(stats.n, stats.mean, stats.variance, stats.mean)


def _effect(c: _Arm, t: _Arm, scale: Scale, alpha: float, *, theta: float | None) -> Effect:
    if scale == "relative" and (c.unadjusted_mean == 0 or c.mean == 0):
        raise ExperimentError("control", "its mean is 0, so the relative effect is undefined",
                              "Report the absolute effect instead, or wait for non-zero control values.")
    if c.variance <= 0 or t.variance <= 0:
        raise ExperimentError("arms", "an arm has no variance, so no interval can be computed",
                              "Wait for more units (a binary metric needs conversions in both arms).")
    if scale == "relative":
        estimate = (t.mean - c.mean) / c.unadjusted_mean
        variance = (t.variance / (c.unadjusted_mean**2 * t.n)
                    + c.variance * t.unadjusted_mean**2 / (c.unadjusted_mean**4 * c.n))
    else:
        estimate = t.mean - c.mean
        variance = t.variance / t.n + c.variance / c.n
    se = math.sqrt(variance)
    dof = (t.variance / t.n + c.variance / c.n) ** 2 / (
        t.variance**2 / (t.n**2 * (t.n - 1)) + c.variance**2 / (c.n**2 * (c.n - 1)))
    half = float(special.stdtrit(dof, 1 - alpha / 2)) * se
    z = float(special.ndtri(1 - alpha / 2)) * se
    return Effect(
        scale=scale, estimate=estimate, ci_low=estimate - half, ci_high=estimate + half,
        p_value=float(min(1.0, 2 * special.stdtr(dof, -abs(estimate) / se))), std_error=se,
        chance_to_win=float(special.ndtr(estimate / se)), credible_low=estimate - z, credible_high=estimate + z,
        n_control=c.n, n_treatment=t.n, mean_control=c.unadjusted_mean, mean_treatment=t.unadjusted_mean,
        alpha=alpha, theta=theta)


def adjust_p_values(p_values: Sequence[float] | np.ndarray, *, method: PValueAdjustment = "holm") -> np.ndarray:
    """Correct the p-values of several metrics of one experiment for multiplicity.

    ``holm`` (Holm–Bonferroni) keeps the family-wise error rate — the chance that *any* metric
    is declared changed when none is — at alpha; ``bh`` (Benjamini–Hochberg) keeps the expected
    share of false discoveries among the metrics declared changed at alpha. Compare the adjusted
    values with alpha as usual. The same procedures GrowthBook offers.

    Args:
        p_values: One p-value per metric, in any order.
        method: ``holm`` or ``bh``.

    Returns:
        The adjusted p-values, in the input order (each at least its raw value, at most 1).

    Raises:
        ExperimentError: when a value is not a probability or the method is unknown.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or np.any(~((p >= 0) & (p <= 1))):
        raise ExperimentError("p_values", "expected a flat sequence of probabilities in [0, 1]",
                              "Pass one p-value per metric.")
    if method not in ("holm", "bh"):
        raise ExperimentError("method", f"{method!r} is unknown", "Use 'holm' or 'bh'.")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    else:
        adjusted = np.minimum.accumulate(np.minimum(1.0, m / np.arange(1, m + 1) * ranked)[::-1])[::-1]
    out = np.empty(m)
    out[order] = adjusted
    return out


def _check(control: Stats, treatment: Stats, scale: str, alpha: float) -> None:
    if type(control) is not type(treatment):
        raise ExperimentError("arms", f"control is {type(control).__name__}, treatment {type(treatment).__name__}",
                              "Summarize both arms the same way.")
    if scale not in ("relative", "absolute"):
        raise ExperimentError("scale", f"{scale!r} is unknown", "Use 'relative' or 'absolute'.")
    if not 0 < alpha < 1:
        raise ExperimentError("alpha", f"must be in (0, 1), got {alpha!r}", "Use e.g. 0.05.")
    if min(control.n, treatment.n) < 2:
        raise ExperimentError("arms", f"{control.n} control and {treatment.n} treatment units",
                              "At least 2 units per arm are needed to estimate a variance.")


def _finite(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ExperimentError(name, f"expected a flat array, got shape {array.shape}", "Pass one value per unit.")
    if not np.all(np.isfinite(array)):
        raise ExperimentError(name, "holds NaN or infinite values",
                              "Fill units without activity with 0; drop units that must be excluded.")
    return array

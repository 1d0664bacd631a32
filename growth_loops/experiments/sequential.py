"""Always-valid, one-sided tests of a relative change: safe to re-evaluate every night.

Guardrails ask one question again and again: *has the treatment moved a metric below
``-tolerance``?* Answering it at every nightly look with a fixed-horizon interval rolls back
harmless treatments far more often than its nominal 5%: each look is another chance to cross.
This module answers it with a mixture sequential probability ratio test (mSPRT) on the **log
ratio** of the arm means, ``θ = log(m_t / m_c)``:

* the estimate ``θ̂`` and its delta-method variance ``V = v_t / (n_t m_t²) + v_c / (n_c m_c²)``
  come from sufficient statistics (:class:`~growth_loops.experiments.effects.MeanStats` or
  :class:`~growth_loops.experiments.effects.RatioStats`), so a ratio metric works as a mean does;
* against the null "θ ≥ θ0" (``θ0 = log(1 - tolerance)``), the likelihood ratio of the normal
  approximation is mixed over *drops* only — a half-normal prior on ``θ - θ0 < 0`` — and over a
  few prior scales (:data:`DEFAULT_MIXTURE`: one tuned to small effects and large samples, one to
  large effects and small samples). The mixture is a nonnegative supermartingale under the null,
  so by Ville's inequality the probability that it *ever* reaches ``1 / alpha`` is at most
  ``alpha``, however many looks are taken and whenever the looks are taken;
* that threshold is turned into a margin ``h(V)``: the always-valid upper confidence bound of
  ``θ`` is ``θ̂ + h``, and the null is rejected — the guardrail rolls back — exactly when
  ``θ̂ + h < θ0``. :func:`log_mde` is the change the test detects with ``power`` at this sample,
  ``h + z_power · √V``.

The guarantee assumes the data of each look contain those of the previous one (units accumulate
and their values are final when first counted) and the normal approximation of the means (a few
hundred units per arm). ``tests/unit/test_guardrail_sequential.py`` measures it: the share of
500 A/A loops rolled back over 30 nightly looks, and the power against a true drop.
"""

from __future__ import annotations

import math

from scipy import optimize, special

from growth_loops.experiments.effects import MeanStats, RatioStats
from growth_loops.experiments.errors import ExperimentError

__all__ = ["DEFAULT_MIXTURE", "Mixture", "log_mde", "log_ratio", "relative_mde", "upper_margin"]

Mixture = tuple[tuple[float, float], ...]
DEFAULT_MIXTURE: Mixture = ((0.05, 0.8), (0.3, 0.2))
"""(prior sd of the log-ratio drop, weight) pairs. 0.05 keeps the test sharp for drops of a few
percent on tens of thousands of units per arm; 0.3 lets it catch a drop of tens of percent within
a few hundred units. Measured (``tests/unit/test_guardrail_sequential.py``): power 85% against a
true -5% on a 10% conversion with a 1% tolerance at 5,000 units per arm a day over 30 nights, a
-47.5% revenue drop caught after about four days of 60 units per arm."""


def log_ratio(control: MeanStats | RatioStats, treatment: MeanStats | RatioStats) -> tuple[float, float]:
    """``(log(m_t / m_c), its delta-method variance)`` from two arms' sufficient statistics.

    Raises:
        ExperimentError: when an arm has fewer than 2 units or a mean that is not positive
            (the log ratio is undefined).
    """
    if min(control.n, treatment.n) < 2:
        raise ExperimentError("arms", f"{control.n} control and {treatment.n} treatment units",
                              "At least 2 units per arm are needed to estimate a variance.")
    mc, mt = control.mean, treatment.mean
    if mc <= 0 or mt <= 0:
        raise ExperimentError("arms", f"the means are {mc:g} (control) and {mt:g} (treatment); the log ratio "
                              "needs both positive", "Wait for non-zero values in both arms.")
    variance = treatment.variance / (treatment.n * mt**2) + control.variance / (control.n * mc**2)
    return math.log(mt / mc), variance


def _log_lambda(gap: float, variance: float, mixture: Mixture) -> float:
    """Log of the one-sided mixture likelihood ratio when ``θ̂`` is ``gap`` below the null."""
    terms = []
    for sd, weight in mixture:
        t2 = sd * sd
        s = variance + t2
        tail = float(special.log_ndtr(gap * sd / math.sqrt(variance * s)))
        terms.append(math.log(weight) + math.log(2.0) + 0.5 * math.log(variance / s)
                     + gap * gap * t2 / (2.0 * variance * s) + tail)
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def _check(variance: float, alpha: float, mixture: Mixture) -> None:
    if not (math.isfinite(variance) and variance > 0):
        raise ExperimentError("variance", f"{variance!r} is not a positive number", "Both arms need some variance.")
    if not 0 < alpha < 1:
        raise ExperimentError("alpha", f"{alpha!r} is not in (0, 1)", "Use e.g. 0.05.")
    if not mixture or any(sd <= 0 or w <= 0 for sd, w in mixture) or abs(sum(w for _, w in mixture) - 1) > 1e-9:
        raise ExperimentError("mixture", f"{mixture!r} is not positive (sd, weight) pairs with weights summing to 1",
                              "Use DEFAULT_MIXTURE or pairs like ((0.05, 0.8), (0.3, 0.2)).")


def upper_margin(variance: float, *, alpha: float, mixture: Mixture = DEFAULT_MIXTURE) -> float:
    """``h`` such that ``θ̂ + h`` is an always-valid one-sided ``1 - alpha`` upper bound of ``θ``.

    Args:
        variance: ``V``, the variance of ``θ̂`` at this look.
        alpha: Probability, over all looks together, that the bound ever falls below the truth.
        mixture: The prior scales of the test (:data:`DEFAULT_MIXTURE`).

    Raises:
        ExperimentError: when ``variance`` is not positive or ``alpha`` / ``mixture`` is malformed.
    """
    _check(variance, alpha, mixture)
    target = math.log(1.0 / alpha)
    high = math.sqrt(variance)
    while _log_lambda(high, variance, mixture) < target:
        high *= 2.0
    return float(optimize.brentq(lambda h: _log_lambda(h, variance, mixture) - target, 0.0, high,
                                 xtol=1e-12, rtol=1e-10))


def log_mde(variance: float, *, alpha: float, power: float = 0.8, mixture: Mixture = DEFAULT_MIXTURE) -> float:
    """The log-ratio change this look detects with probability ``power``: ``h + z_power √V``."""
    if not 0 < power < 1:
        raise ExperimentError("power", f"{power!r} is not in (0, 1)", "Use e.g. 0.8.")
    return upper_margin(variance, alpha=alpha, mixture=mixture) + float(special.ndtri(power)) * math.sqrt(variance)


def relative_mde(variance: float, *, alpha: float, power: float = 0.8, mixture: Mixture = DEFAULT_MIXTURE) -> float:
    """:func:`log_mde` as a relative drop (0.05: a 5% drop is detected with ``power``)."""
    return -math.expm1(-log_mde(variance, alpha=alpha, power=power, mixture=mixture))

"""Sample-size planning: how many units an experiment needs to detect a relative effect, for a
fixed-horizon analysis or an always-valid one read every night (``growthlake experiments plan``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special

from growth_loops.experiments.errors import ExperimentError

__all__ = ["SamplePlan", "plan_sample_size"]


@dataclass(frozen=True)
class SamplePlan:
    """How many units an experiment needs to detect a relative effect.

    Attributes:
        units_per_control: Control units needed.
        units_per_treatment: Treatment units needed.
        total_units: Both arms.
        relative_mde: The relative effect planned for.
        alpha: Two-sided miss rate (fixed horizon) or the always-valid miss rate (sequential).
        power: Probability of detecting ``relative_mde`` when it is true.
        sequential: Whether the plan is for an always-valid (peek-every-day) analysis.
        days: Days to reach ``total_units`` at the given daily traffic, or None.
    """

    units_per_control: int
    units_per_treatment: int
    total_units: int
    relative_mde: float
    alpha: float
    power: float
    sequential: bool
    days: int | None


def plan_sample_size(*, baseline_mean: float, baseline_sd: float | None = None, relative_mde: float,
                     alpha: float = 0.05, power: float = 0.8, treatment_share: float = 0.5,
                     sequential: bool = False, daily_units: int | None = None) -> SamplePlan:
    """Units needed to detect a relative change of ``relative_mde`` in a metric's mean.

    The relative effect's delta-method variance with ``n_c`` control and ``n_t`` treatment units
    is ``σ_t² / (μ² n_t) + (1 + δ)² σ² / (μ² n_c)``; the fixed-horizon plan solves
    ``(z_{1-α/2} + z_{power}) · se = δ``. With ``sequential=True`` the plan is for the guardrails'
    always-valid test (``growth_loops.experiments.sequential``): the smallest sample whose
    always-valid minimum detectable effect is at most ``δ`` — what a loop needs before its
    guardrail verdicts can say ``pass``.

    Args:
        baseline_mean: The control mean (a conversion rate for a binary metric).
        baseline_sd: The per-unit standard deviation; None for a binary metric (``√(p(1-p))``).
        relative_mde: The relative effect to detect, e.g. 0.05 for ±5%.
        alpha: Miss rate (two-sided).
        power: Detection probability, e.g. 0.8.
        treatment_share: Share of units in the treatment arm.
        sequential: Plan for the always-valid test instead of one fixed-horizon look.
        daily_units: Units entering the experiment per day (both arms), to say how many days.

    Raises:
        ExperimentError: when an argument is out of range (a rate outside (0, 1) without an sd,
            a non-positive mean or sd, shares or probabilities outside (0, 1)).
    """
    for name, value in (("alpha", alpha), ("power", power), ("treatment_share", treatment_share)):
        if not 0 < value < 1:
            raise ExperimentError(name, f"{value!r} is not in (0, 1)", "Use e.g. alpha 0.05, power 0.8, share 0.5.")
    if not relative_mde > 0 or baseline_mean <= 0:
        raise ExperimentError("plan", f"relative_mde {relative_mde!r} and baseline_mean {baseline_mean!r} must be "
                              "positive", "Give the effect as a share (0.05 = 5%) and the control mean.")
    if baseline_sd is None:
        if not 0 < baseline_mean < 1:
            raise ExperimentError("baseline_mean", f"{baseline_mean!r} is not a rate in (0, 1)",
                                  "Give --sd for a metric that is not a conversion rate.")
        p_t = min(baseline_mean * (1 + relative_mde), 1 - 1e-9)
        var_c, var_t = baseline_mean * (1 - baseline_mean), p_t * (1 - p_t)
    else:
        if baseline_sd <= 0:
            raise ExperimentError("baseline_sd", f"{baseline_sd!r} is not positive", "Give the per-unit sd.")
        var_c = var_t = baseline_sd**2
    mu, mu_t, share = baseline_mean, baseline_mean * (1 + relative_mde), treatment_share

    if sequential:  # the guardrails' test works on the log ratio: V = v_t / (n_t m_t²) + v_c / (n_c m_c²)
        from growth_loops.experiments.sequential import relative_mde as always_valid_mde

        def log_variance(total: float) -> float:
            return var_t / (mu_t**2 * share * total) + var_c / (mu**2 * (1 - share) * total)

        low, high = 4.0, 8.0
        while always_valid_mde(log_variance(high), alpha=alpha, power=power) > relative_mde:
            low, high = high, high * 2
            if high > 1e12:
                raise ExperimentError("plan", "no sample below 10^12 units detects that effect",
                                      "Plan for a larger effect.")
        for _ in range(60):
            mid = math.sqrt(low * high)
            low, high = (low, mid) if always_valid_mde(log_variance(mid), alpha=alpha, power=power) <= relative_mde \
                else (mid, high)
        total = high
    else:
        z = float(special.ndtri(1 - alpha / 2) + special.ndtri(power))
        variance = var_t / (mu**2 * share) + (1 + relative_mde) ** 2 * var_c / (mu**2 * (1 - share))
        total = z**2 * variance / relative_mde**2
    treated = math.ceil(total * share)
    control = math.ceil(total * (1 - share))
    days = math.ceil((treated + control) / daily_units) if daily_units else None
    return SamplePlan(control, treated, control + treated, relative_mde, alpha, power, sequential, days)

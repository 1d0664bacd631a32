"""Off-policy evaluation: what a candidate policy would have earned, estimated from another's logs.

The logs are ``n`` units, each with the arm the logging policy played (``arms``), the probability
it played it with (``propensities``, as logged by ``choose``) and the reward that followed. The
candidate is given by its action probabilities ``target_probs[i, a] = pi(a | x_i)`` on the same
units, an (n, K) matrix (a deterministic candidate has one-hot rows, e.g.
``LinearThompson.greedy_policy``). Contexts are therefore not needed here: they enter only
through ``target_probs`` and, for DR, the reward model's predictions. With the importance weight
``w_i = pi(a_i | x_i) / propensity_i``:

* ``ips`` — inverse propensity scoring, ``mean(w_i r_i)``: unbiased when the propensities are
  right and every arm the candidate may play had a positive propensity;
* ``snips`` — self-normalised IPS, ``sum(w_i r_i) / sum(w_i)``: slightly biased (O(1/n)), but
  invariant to adding a constant to rewards and usually much less variable;
* ``doubly_robust`` — ``mean(sum_a pi(a|x_i) q(x_i, a) + w_i (r_i - q(x_i, a_i)))`` with a reward
  model ``q`` (an (n, K) matrix of predictions): unbiased if the propensities are right, whatever
  ``q``; the better ``q``, the smaller its variance. Fit ``q`` on a different fold of logs than
  the one evaluated (e.g. ``LinearThompson.expected_rewards``), or its errors correlate with the
  rewards it corrects.

Confidence intervals are normal approximations, ``value +/- z * std_error``: for IPS and DR the
standard error of the mean of the per-unit contributions; for SNIPS the delta method, i.e. the
standard error of the mean of ``w_i (r_i - value) / mean(w)``. They are trustworthy when the
effective sample size ``(sum w)^2 / sum w^2`` (Kish) is large — a few hundred at least; the
exploration floor of the logging policy bounds the weights and keeps it so.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from growth_loops.bandits.errors import (
    BanditError,
    _check_arm_positions,
    _check_matrix,
    _check_vector,
)

__all__ = [
    "OpeEstimate",
    "PromotionDecision",
    "doubly_robust",
    "evaluate_candidate",
    "ips",
    "on_policy_value",
    "should_promote",
    "snips",
]

_ROW_SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class OpeEstimate:
    """A policy-value estimate with its normal-approximation confidence interval.

    Attributes:
        value: Estimated expected reward per unit under the evaluated policy.
        ci_low: Lower end of the ``confidence`` interval.
        ci_high: Upper end of the interval.
        std_error: Standard error of ``value``.
        n: Logged units used.
        effective_sample_size: Kish effective sample size of the importance weights
            ``(sum w)^2 / sum w^2``; ``n`` for an on-policy mean.
        method: ``"ips"``, ``"snips"``, ``"dr"`` or ``"on_policy"``.
        confidence: Coverage level of the interval.
    """

    value: float
    ci_low: float
    ci_high: float
    std_error: float
    n: int
    effective_sample_size: float
    method: str = ""
    confidence: float = 0.95


@dataclass(frozen=True)
class PromotionDecision:
    """Whether to replace the current policy by a candidate, and why.

    Attributes:
        promote: True when the candidate passed the rule of ``should_promote``.
        reason: One sentence a reviewer can read in the audit log.
        candidate_value: The candidate's estimated value.
        current_value: The current policy's value it was compared with.
        lift: ``candidate_value - current_value``.
        lower_bound: The candidate's lower confidence bound.
        min_lift: The lift the candidate had to exceed.
        require: The rule applied, ``"ci"`` or ``"point"``.
    """

    promote: bool
    reason: str
    candidate_value: float
    current_value: float
    lift: float
    lower_bound: float
    min_lift: float
    require: str


def ips(arms: Any, propensities: Any, rewards: Any, target_probs: Any, *, confidence: float = 0.95) -> OpeEstimate:
    """Inverse-propensity-scoring estimate of the target policy's value.

    Args:
        arms: Logged arm positions ``0..K-1``, shape (n,).
        propensities: Probability the logging policy played each logged arm, in ``(0, 1]``, (n,).
        rewards: Observed rewards, shape (n,).
        target_probs: Target policy's action probabilities ``pi(a | x_i)``, shape (n, K), rows
            summing to 1.
        confidence: Coverage of the normal-approximation interval.

    Raises:
        BanditError: for mismatched shapes, propensities outside ``(0, 1]``, probability rows
            that are negative or do not sum to 1, arms outside ``0..K-1``, or fewer than 2 units.
    """
    weights, reward, _, _ = _logged(arms, propensities, rewards, target_probs)
    return _mean_estimate(weights * reward, weights, "ips", confidence)


def snips(arms: Any, propensities: Any, rewards: Any, target_probs: Any, *, confidence: float = 0.95) -> OpeEstimate:
    """Self-normalised IPS estimate, ``sum(w r) / sum(w)``, with a delta-method interval.

    Arguments and errors as for ``ips``; also raises ``BanditError`` when the target policy puts
    zero probability on every logged arm (the ratio is undefined).
    """
    weights, reward, _, _ = _logged(arms, propensities, rewards, target_probs)
    mean_weight = weights.mean()
    if mean_weight <= 0:
        raise BanditError(
            "target_probs",
            "the target policy gives probability 0 to every logged arm, so SNIPS is undefined",
            "Evaluate it on logs of a policy that explored the candidate's arms, or use ips / doubly_robust.",
        )
    value = float((weights * reward).sum() / weights.sum())
    influence = weights * (reward - value) / mean_weight  # delta method for the ratio of means
    std_error = _std_error(influence)
    return _estimate(value, std_error, weights, "snips", confidence)


def doubly_robust(
    arms: Any,
    propensities: Any,
    rewards: Any,
    target_probs: Any,
    reward_model: Any,
    *,
    confidence: float = 0.95,
) -> OpeEstimate:
    """Doubly robust estimate: the reward model's prediction, corrected by weighted residuals.

    Args:
        arms: Logged arm positions ``0..K-1``, shape (n,).
        propensities: Probability the logging policy played each logged arm, in ``(0, 1]``, (n,).
        rewards: Observed rewards, shape (n,).
        target_probs: Target policy's ``pi(a | x_i)``, shape (n, K), rows summing to 1.
        reward_model: Predicted reward of every arm for every logged unit, shape (n, K), from a
            model fitted on other data than these logs.
        confidence: Coverage of the normal-approximation interval.

    Raises:
        BanditError: as for ``ips``, and when ``reward_model`` is not a finite (n, K) matrix.
    """
    weights, reward, positions, probs = _logged(arms, propensities, rewards, target_probs)
    predicted = _check_matrix(reward_model, "reward_model", probs.shape)
    rows = np.arange(positions.shape[0])
    contributions = (probs * predicted).sum(axis=1) + weights * (reward - predicted[rows, positions])
    return _mean_estimate(contributions, weights, "dr", confidence)


def on_policy_value(rewards: Any, *, confidence: float = 0.95) -> OpeEstimate:
    """The logging (current) policy's own value: the mean logged reward with its interval.

    Raises:
        BanditError: when rewards are not a finite 1-D array of at least 2 values.
    """
    reward = _check_vector(rewards, "rewards")
    _check_enough(reward.shape[0])
    return _mean_estimate(reward, np.ones_like(reward), "on_policy", confidence)


def evaluate_candidate(
    arms: Any,
    propensities: Any,
    rewards: Any,
    candidate_probs: Any,
    reward_model: Any,
    *,
    confidence: float = 0.95,
) -> dict[str, OpeEstimate]:
    """All three estimates of a candidate on the same logs: ``{"ips", "snips", "dr"}``.

    Arguments and errors as for ``doubly_robust`` (``candidate_probs`` is its ``target_probs``).
    """
    logged = (arms, propensities, rewards, candidate_probs)
    return {
        "ips": ips(*logged, confidence=confidence),
        "snips": snips(*logged, confidence=confidence),
        "dr": doubly_robust(*logged, reward_model, confidence=confidence),
    }


def should_promote(
    candidate: OpeEstimate,
    current: OpeEstimate | float,
    *,
    min_lift: float = 0.0,
    require: Literal["ci", "point"] = "ci",
    min_effective_sample_size: float = 0.0,
) -> PromotionDecision:
    """Decide whether a candidate's off-policy estimate justifies replacing the current policy.

    The rule, with ``current_value`` the current policy's value (``current.value`` for an
    estimate, e.g. ``on_policy_value`` of the same logs, or a number):

    1. the candidate's effective sample size is at least ``min_effective_sample_size``;
    2. its point estimate beats the current value by more than ``min_lift``
       (``candidate.value - current_value > min_lift``);
    3. with ``require="ci"`` (the default), also its lower confidence bound is above the current
       value (``candidate.ci_low > current_value``), so a lift that may be noise is refused;
       ``require="point"`` skips this check.

    Only the candidate's uncertainty enters: the current policy's on-policy mean is estimated
    from all the logs without importance weights and is far less noisy than an IPS or DR value.
    Pass the DR estimate as ``candidate`` unless there is no reward model.

    Raises:
        BanditError: for an unknown ``require`` or a non-finite current value or ``min_lift``.
    """
    if require not in ("ci", "point"):
        raise BanditError("require", f"{require!r} is not 'ci' or 'point'", "Pass require='ci' or 'point'.")
    current_value = float(current.value if isinstance(current, OpeEstimate) else current)
    if not (np.isfinite(current_value) and np.isfinite(min_lift)):
        raise BanditError(
            "should_promote",
            f"current value {current_value!r} or min_lift {min_lift!r} is not finite",
            "Pass the current policy's value (or its on_policy_value estimate) and a finite min_lift.",
        )
    lift = candidate.value - current_value

    def decide(promote: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promote, reason, candidate.value, current_value, lift, candidate.ci_low, float(min_lift), require
        )

    level = f"{candidate.confidence:.0%}"
    if candidate.effective_sample_size < min_effective_sample_size:
        return decide(
            False,
            f"refused: the candidate's effective sample size {candidate.effective_sample_size:.0f} is below "
            f"{min_effective_sample_size:.0f}; the logs explore its actions too little to judge it",
        )
    if lift <= min_lift:
        return decide(
            False,
            f"refused: estimated lift {lift:+.4g} ({candidate.value:.4g} vs {current_value:.4g}) does not "
            f"exceed the required {min_lift:.4g}",
        )
    if require == "ci" and candidate.ci_low <= current_value:
        return decide(
            False,
            f"refused: estimated lift {lift:+.4g} but the {level} lower bound {candidate.ci_low:.4g} is not "
            f"above the current value {current_value:.4g}; the lift may be noise",
        )
    bound = f", {level} lower bound {candidate.ci_low:.4g}" if require == "ci" else ""
    return decide(
        True,
        f"promote: estimated value {candidate.value:.4g} beats the current {current_value:.4g} by "
        f"{lift:+.4g} (> {min_lift:.4g}){bound}",
    )


def _logged(
    arms: Any, propensities: Any, rewards: Any, target_probs: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(weights, rewards, arm positions, target probabilities)`` of a logged dataset."""
    probs = np.asarray(target_probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] < 1:
        raise BanditError(
            "target_probs",
            f"has shape {probs.shape}, expected (n, K): one row of action probabilities per unit",
            "For a context-free policy broadcast its probabilities: np.broadcast_to(pi, (n, K)).",
        )
    n, k = probs.shape
    positions = np.asarray(arms)
    if positions.ndim != 1 or positions.shape[0] != n:
        raise BanditError(
            "arms",
            f"has shape {positions.shape} but target_probs has {n} rows",
            "Pass arms, propensities, rewards and target probabilities for the same units, in the same order.",
        )
    _check_enough(n)
    positions = _check_arm_positions(positions, k)
    propensity = _check_vector(propensities, "propensities", n)
    outside = np.flatnonzero((propensity <= 0) | (propensity > 1))
    if outside.size:
        raise BanditError(
            "propensities",
            f"{outside.size} values are outside (0, 1] (first: {propensity[outside[0]]} at row {outside[0]})",
            "Log the probability with which the logging policy played each arm, as choose() returns it; "
            "an arm played with probability 0 cannot be reweighted.",
        )
    reward = _check_vector(rewards, "rewards", n)
    probs = _check_matrix(probs, "target_probs", (n, k))
    negative = np.flatnonzero((probs < 0).any(axis=1))
    if negative.size:
        raise BanditError(
            "target_probs",
            f"{negative.size} rows hold negative probabilities (first: row {negative[0]})",
            "Pass action probabilities pi(a|x) in [0, 1].",
        )
    sums = probs.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE)
    if off.size:
        raise BanditError(
            "target_probs",
            f"{off.size} rows do not sum to 1 (first: row {off[0]} sums to {sums[off[0]]:.6g})",
            "Each row must be a probability distribution over the K arms; normalise it or fix the column count.",
        )
    weights = probs[np.arange(n), positions] / propensity
    return weights, reward, positions, probs


def _check_enough(n: int) -> None:
    if n < 2:
        raise BanditError("logged data", f"has {n} units", "At least 2 units are needed to estimate a standard error.")


def _std_error(contributions: np.ndarray) -> float:
    return float(contributions.std(ddof=1) / np.sqrt(contributions.shape[0]))


def _mean_estimate(contributions: np.ndarray, weights: np.ndarray, method: str, confidence: float) -> OpeEstimate:
    return _estimate(float(contributions.mean()), _std_error(contributions), weights, method, confidence)


def _estimate(value: float, std_error: float, weights: np.ndarray, method: str, confidence: float) -> OpeEstimate:
    if not 0 < confidence < 1:
        raise BanditError("confidence", f"{confidence!r} is not in (0, 1)", "Pass a level such as 0.95.")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    square_sum = float((weights**2).sum())
    ess = float(weights.sum() ** 2 / square_sum) if square_sum > 0 else 0.0
    return OpeEstimate(
        value, value - z * std_error, value + z * std_error, std_error, int(weights.shape[0]), ess, method, confidence
    )

"""Off-policy evaluation: estimates cover the simulator's true values, and promotion follows them."""

from __future__ import annotations

import numpy as np
import pytest

from growth_loops.bandits import (
    BanditError,
    OpeEstimate,
    doubly_robust,
    evaluate_candidate,
    ips,
    on_policy_value,
    should_promote,
    snips,
)

# A simulator with a finite population of 40 context types, so every policy's true value is an
# exact finite sum: mean over types of sum over arms of pi(a|type) * mean_reward(type, a).
K, TYPES = 3, 40
_setup = np.random.default_rng(7)
CONTEXTS = _setup.normal(size=(TYPES, 2))
MEANS = 1 / (1 + np.exp(-(np.array([0.4, 0.3, 0.2]) + CONTEXTS @ np.array([[0.8, 0.0], [-0.8, 0.3], [0.0, -0.9]]).T)))
_scores = np.exp(CONTEXTS @ np.array([[0.3, 0.2], [-0.2, 0.1], [0.0, -0.3]]).T)
LOGGING = 0.1 + 0.7 * _scores / _scores.sum(axis=1, keepdims=True)  # known, stochastic, >= 0.1
GOOD = 0.1 + 0.7 * np.eye(K)[MEANS.argmax(axis=1)]  # mostly the best arm
BAD = 0.1 + 0.7 * np.eye(K)[MEANS.argmin(axis=1)]  # mostly the worst arm
# A reward model as if fitted on another fold: the truth plus a small error.
GOOD_MODEL = np.clip(MEANS + _setup.normal(0, 0.02, MEANS.shape), 0, 1)

REPS, UNITS = 200, 2_000


def true_value(policy: np.ndarray) -> float:
    return float((policy * MEANS).sum(axis=1).mean())


def simulate(reps: int, units: int, seed: int) -> dict[str, np.ndarray]:
    """Logged data of ``reps`` independent experiments of ``units`` units, all at once."""
    rng = np.random.default_rng(seed)
    types = rng.integers(0, TYPES, (reps, units))
    probabilities = LOGGING[types]
    arms = (probabilities.cumsum(axis=-1) <= rng.random((reps, units, 1))).sum(axis=-1).clip(max=K - 1)
    propensities = np.take_along_axis(probabilities, arms[..., None], axis=-1)[..., 0]
    rewards = (rng.random((reps, units)) < MEANS[types, arms]).astype(float)
    return {"types": types, "arms": arms, "propensities": propensities, "rewards": rewards}


@pytest.fixture(scope="module")
def logs() -> dict[str, np.ndarray]:
    return simulate(REPS, UNITS, seed=1)


def estimates(logs, policy: np.ndarray, model: np.ndarray = GOOD_MODEL) -> dict[str, list[OpeEstimate]]:
    out: dict[str, list[OpeEstimate]] = {"ips": [], "snips": [], "dr": []}
    for rep in range(REPS):
        types = logs["types"][rep]
        found = evaluate_candidate(
            logs["arms"][rep], logs["propensities"][rep], logs["rewards"][rep], policy[types], model[types]
        )
        for method, estimate in found.items():
            out[method].append(estimate)
    return out


@pytest.fixture(scope="module")
def good_estimates(logs) -> dict[str, list[OpeEstimate]]:
    return estimates(logs, GOOD)


def test_the_simulated_policies_differ_in_true_value():
    assert true_value(GOOD) > true_value(LOGGING) + 0.05 > true_value(BAD) + 0.1


@pytest.mark.parametrize("method", ["ips", "snips", "dr"])
def test_confidence_intervals_cover_the_true_value(good_estimates, method):
    truth = true_value(GOOD)
    found = good_estimates[method]
    covered = np.mean([e.ci_low <= truth <= e.ci_high for e in found])
    assert covered >= 0.90
    values = np.array([e.value for e in found])
    assert abs(values.mean() - truth) < 4 * values.std() / np.sqrt(REPS)  # no visible bias
    assert all(e.n == UNITS and e.method == method and e.confidence == 0.95 for e in found)
    assert all(0 < e.effective_sample_size <= UNITS for e in found)


def test_doubly_robust_has_lower_variance_than_ips_with_a_good_reward_model(good_estimates):
    ips_values = np.array([e.value for e in good_estimates["ips"]])
    dr_values = np.array([e.value for e in good_estimates["dr"]])
    assert dr_values.var() < 0.6 * ips_values.var()
    assert np.mean([e.std_error for e in good_estimates["dr"]]) < np.mean([e.std_error for e in good_estimates["ips"]])


def test_doubly_robust_stays_unbiased_with_a_useless_reward_model(logs):
    truth = true_value(GOOD)
    found = estimates(logs, GOOD, model=np.zeros_like(MEANS))["dr"]
    values = np.array([e.value for e in found])
    assert abs(values.mean() - truth) < 4 * values.std() / np.sqrt(REPS)
    assert np.mean([e.ci_low <= truth <= e.ci_high for e in found]) >= 0.90


def test_on_policy_value_covers_the_logging_policy(logs):
    truth = true_value(LOGGING)
    found = [on_policy_value(rewards) for rewards in logs["rewards"]]
    assert np.mean([e.ci_low <= truth <= e.ci_high for e in found]) >= 0.90
    assert found[0].effective_sample_size == UNITS


def test_snips_matches_ips_when_the_target_is_the_logging_policy(logs):
    arms, propensities, rewards = logs["arms"][0], logs["propensities"][0], logs["rewards"][0]
    target = LOGGING[logs["types"][0]]
    mean = rewards.mean()
    assert ips(arms, propensities, rewards, target).value == pytest.approx(mean)
    assert snips(arms, propensities, rewards, target).value == pytest.approx(mean)
    assert ips(arms, propensities, rewards, target).effective_sample_size == pytest.approx(UNITS)


# --- promotion --------------------------------------------------------------------------------


def promotions(logs, policy: np.ndarray, **options) -> np.ndarray:
    decisions = []
    for rep in range(REPS):
        types = logs["types"][rep]
        logged = (logs["arms"][rep], logs["propensities"][rep], logs["rewards"][rep])
        candidate = doubly_robust(*logged, policy[types], GOOD_MODEL[types])
        decisions.append(should_promote(candidate, on_policy_value(logs["rewards"][rep]), **options).promote)
    return np.array(decisions)


def test_a_truly_better_candidate_is_promoted(logs):
    assert promotions(logs, GOOD).mean() >= 0.95


def test_a_truly_worse_candidate_is_refused(logs):
    assert not promotions(logs, BAD).any()


def test_a_candidate_no_better_than_the_current_policy_is_refused(logs):
    # The logging policy itself, re-evaluated: any estimated lift is noise.
    assert promotions(logs, LOGGING).mean() <= 0.05


def test_a_lift_smaller_than_min_lift_is_refused(logs):
    lift = true_value(GOOD) - true_value(LOGGING)
    assert promotions(logs, GOOD, min_lift=lift + 0.05).mean() <= 0.05


def test_a_point_lift_whose_lower_bound_is_below_the_current_value_is_refused():
    noisy = OpeEstimate(0.51, 0.48, 0.54, 0.015, 1_000, 400.0, "dr")
    refused = should_promote(noisy, 0.50)
    assert not refused.promote
    assert "lower bound" in refused.reason and "noise" in refused.reason
    assert refused.lift == pytest.approx(0.01) and refused.lower_bound == 0.48
    assert should_promote(noisy, 0.50, require="point").promote
    assert not should_promote(noisy, 0.50, require="point", min_lift=0.02).promote
    assert not should_promote(noisy, 0.50, require="point", min_effective_sample_size=500).promote
    confident = OpeEstimate(0.56, 0.53, 0.59, 0.015, 1_000, 400.0, "dr")
    promoted = should_promote(confident, on_policy_value([0.0, 1.0] * 500))
    assert promoted.promote and promoted.current_value == pytest.approx(0.5)


# --- invalid inputs ---------------------------------------------------------------------------

_ARMS = np.array([0, 1, 2, 1])
_PROPENSITIES = np.array([0.5, 0.25, 0.25, 0.25])
_REWARDS = np.array([1.0, 0.0, 1.0, 0.0])
_TARGET = np.full((4, 3), 1 / 3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"propensities": [0.5, 0.0, 0.25, 0.25]}, "outside (0, 1]"),
        ({"propensities": [0.5, 1.5, 0.25, 0.25]}, "outside (0, 1]"),
        ({"propensities": [0.5, -0.1, 0.25, 0.25]}, "outside (0, 1]"),
        ({"propensities": [0.5, np.nan, 0.25, 0.25]}, "NaN"),
        ({"propensities": [0.5, 0.25, 0.25]}, "has 3 values but there are 4 units"),
        ({"rewards": [1.0, 0.0]}, "has 2 values but there are 4 units"),
        ({"arms": [0, 1, 2]}, "target_probs has 4 rows"),
        ({"arms": [0, 1, 3, 1]}, "outside 0..2"),
        ({"arms": [0, 1, 1.5, 1]}, "not whole arm positions"),
        ({"target_probs": np.full((4, 3), 0.3)}, "do not sum to 1"),
        ({"target_probs": np.tile([1.2, -0.2, 0.0], (4, 1))}, "negative"),
        ({"target_probs": np.full(3, 1 / 3)}, "expected (n, K)"),
        ({"reward_model": np.zeros((4, 2))}, "reward_model: has shape (4, 2)"),
        ({"reward_model": np.full((4, 3), np.nan)}, "NaN"),
        ({"arms": [0], "propensities": [1.0], "rewards": [1.0], "target_probs": [[1.0, 0, 0]]}, "2 units"),
    ],
)
def test_invalid_logged_data_raises_clear_errors(changes, message):
    logged = {
        "arms": _ARMS,
        "propensities": _PROPENSITIES,
        "rewards": _REWARDS,
        "target_probs": _TARGET,
        "reward_model": np.zeros((4, 3)),
        **changes,
    }
    with pytest.raises(BanditError) as caught:
        doubly_robust(**logged)
    assert message in str(caught.value)


def test_snips_refuses_a_target_that_never_plays_a_logged_arm():
    with pytest.raises(BanditError, match="SNIPS is undefined"):
        snips([0, 0], [0.5, 0.5], [1.0, 0.0], [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])


def test_should_promote_rejects_an_unknown_rule():
    estimate = OpeEstimate(0.5, 0.4, 0.6, 0.05, 100, 100.0)
    with pytest.raises(BanditError, match="require"):
        should_promote(estimate, 0.4, require="vibes")  # type: ignore[arg-type]
    with pytest.raises(BanditError, match="not finite"):
        should_promote(estimate, float("nan"))

"""Bandit policies: they find the best arm, and the propensities they log are the real ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from growth_loops.bandits import BanditError, BetaThompson, LinearThompson

ARMS = ("control", "discount", "free_trial")
RATES = np.array([0.10, 0.12, 0.15])  # free_trial is best

# Contextual environment: two features uniform on [-1, 1]; the best arm depends on them.
BASE = np.array([0.40, 0.40, 0.38])
SLOPES = np.array([[0.25, 0.0], [-0.25, 0.0], [0.0, 0.25]])


def true_means(contexts: np.ndarray) -> np.ndarray:
    """Success probability of every arm for every context, shape (n, 3)."""
    return BASE + contexts @ SLOPES.T


def run_thompson(rng: np.random.Generator, rounds: int = 20, units: int = 500) -> tuple[BetaThompson, list]:
    sampler, history = BetaThompson.new(ARMS), []
    for _ in range(rounds):
        arms, propensities = sampler.choose(units, rng)
        rewards = (rng.random(units) < RATES[arms]).astype(float)
        sampler = sampler.update(arms, rewards)
        history.append((arms, propensities))
    return sampler, history


@pytest.fixture(scope="module")
def trained_thompson() -> tuple[BetaThompson, list]:
    return run_thompson(np.random.default_rng(2026))


# --- Beta-Bernoulli Thompson sampling ---------------------------------------------------------


def test_thompson_sends_most_late_traffic_to_the_best_arm(trained_thompson):
    _, history = trained_thompson
    late_arms = np.concatenate([arms for arms, _ in history[-5:]])
    assert np.mean(late_arms == 2) > 0.70
    early_arms = history[0][0]
    assert np.mean(early_arms == 2) < 0.5  # it started out exploring


def test_thompson_propensities_are_probabilities_above_the_floor(trained_thompson):
    sampler, history = trained_thompson
    propensities = np.concatenate([p for _, p in history])
    assert np.all((propensities > 0) & (propensities <= 1))
    assert propensities.min() >= sampler.min_share - 1e-12

    best = sampler.arm_probabilities(10_000, np.random.default_rng(1))
    assert best.shape == (3,) and best.sum() == pytest.approx(1.0)
    policy = sampler.policy_probabilities(10_000, np.random.default_rng(1))
    assert policy.sum() == pytest.approx(1.0)
    assert policy.min() >= sampler.min_share
    assert best.argmax() == 2


def test_thompson_logged_propensity_is_the_empirical_frequency():
    # A posterior where no arm dominates, so every propensity is far from the floor.
    successes = (5, 6, 7)
    arms = np.repeat([0, 1, 2], 40)
    rewards = np.concatenate([np.arange(40) < s for s in successes]).astype(float)
    sampler = BetaThompson.new(ARMS).update(arms, rewards)
    n = 200_000
    arms, propensities = sampler.choose(n, np.random.default_rng(5))
    for k in range(3):
        logged = propensities[arms == k]
        assert np.ptp(logged) == 0  # one batch, one posterior: one propensity per arm
        frequency = np.mean(arms == k)
        assert abs(frequency - logged[0]) < 4 * np.sqrt(logged[0] * (1 - logged[0]) / n)


def test_thompson_state_round_trips_through_json(trained_thompson):
    sampler, _ = trained_thompson
    restored = BetaThompson.from_dict(json.loads(json.dumps(sampler.to_dict())))
    assert restored.to_dict() == sampler.to_dict()
    original = sampler.choose(1_000, np.random.default_rng(9))
    replayed = restored.choose(1_000, np.random.default_rng(9))
    np.testing.assert_array_equal(original[0], replayed[0])
    np.testing.assert_array_equal(original[1], replayed[1])


def test_thompson_update_counts_successes_and_failures_and_accepts_names():
    sampler = BetaThompson.new(ARMS, prior_alpha=2, prior_beta=3)
    by_position = sampler.update([0, 0, 2, 2, 2], [1, 0, 1, 1, 0])
    by_name = sampler.update(["control", "control", "free_trial", "free_trial", "free_trial"], [1, 0, 1, 1, 0])
    np.testing.assert_array_equal(by_position.alpha, [3, 2, 4])
    np.testing.assert_array_equal(by_position.beta, [4, 3, 4])
    assert by_name.to_dict() == by_position.to_dict()
    np.testing.assert_array_equal(sampler.alpha, [2, 2, 2])  # the old state is untouched
    batched = sampler.update([0, 1], [1, 0]).update([2, 1], [1, 1])
    assert batched.to_dict() == sampler.update([0, 1, 2, 1], [1, 0, 1, 1]).to_dict()


# --- Linear Thompson sampling -----------------------------------------------------------------


@pytest.fixture(scope="module")
def contextual_run() -> dict:
    rng = np.random.default_rng(11)
    linear, blind = LinearThompson.new(ARMS, 2), BetaThompson.new(ARMS)
    linear_means, blind_means, propensities = [], [], []
    units = 500
    rows = np.arange(units)
    for round_ in range(20):
        contexts = rng.uniform(-1, 1, (units, 2))
        means = true_means(contexts)
        arms, p = linear.choose(contexts, rng)
        linear = linear.update(contexts, arms, (rng.random(units) < means[rows, arms]).astype(float))
        blind_arms, _ = blind.choose(units, rng)
        blind = blind.update(blind_arms, (rng.random(units) < means[rows, blind_arms]).astype(float))
        propensities.append(p)
        if round_ >= 15:  # compare expected rewards, which are free of Bernoulli noise
            linear_means.append(means[rows, arms].mean())
            blind_means.append(means[rows, blind_arms].mean())
    return {
        "policy": linear,
        "linear_reward": float(np.mean(linear_means)),
        "blind_reward": float(np.mean(blind_means)),
        "propensities": np.concatenate(propensities),
    }


def test_linear_thompson_beats_context_free_thompson(contextual_run):
    # Context-free, the best a policy can do is ~0.40; using the context it can reach ~0.54.
    assert contextual_run["linear_reward"] > contextual_run["blind_reward"] + 0.05
    assert contextual_run["linear_reward"] > 0.50


def test_linear_greedy_policy_picks_the_true_best_arm(contextual_run):
    policy = contextual_run["policy"]
    contexts = np.random.default_rng(12).uniform(-1, 1, (2_000, 2))
    greedy = policy.greedy_policy(contexts)
    assert greedy.shape == (2_000, 3)
    np.testing.assert_allclose(greedy.sum(axis=1), 1.0)
    assert np.mean(greedy.argmax(axis=1) == true_means(contexts).argmax(axis=1)) > 0.80
    # The posterior means estimate the true success rates.
    assert np.abs(policy.expected_rewards(contexts) - true_means(contexts)).mean() < 0.05
    floored = policy.greedy_policy(contexts, min_share=0.05)
    assert floored.min() == pytest.approx(0.05) and floored.max() == pytest.approx(0.90)


def test_linear_propensities_are_bounded_and_match_frequencies(contextual_run):
    policy = contextual_run["policy"]
    assert np.all(contextual_run["propensities"] >= policy.min_share - 1e-12)
    assert np.all(contextual_run["propensities"] <= 1)
    # One context near the decision boundary of arms 0 and 2, repeated: the logged propensity of
    # each arm equals how often it is played.
    n = 100_000
    contexts = np.tile([[0.02, 0.05]], (n, 1))
    arms, propensities = policy.choose(contexts, np.random.default_rng(13))
    probabilities = policy.policy_probabilities(contexts[:5], np.random.default_rng(14))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    for k in range(3):
        if np.any(arms == k):
            logged = propensities[arms == k][0]
            assert abs(np.mean(arms == k) - logged) < 4 * np.sqrt(logged * (1 - logged) / n) + 1e-9


def test_linear_update_is_additive_and_state_round_trips():
    rng = np.random.default_rng(21)
    contexts = rng.normal(size=(300, 2))
    arms = rng.integers(0, 3, 300)
    rewards = rng.normal(size=300)
    fresh = LinearThompson.new(ARMS, 2, noise_scale=0.3, ridge=2.0)
    whole = fresh.update(contexts, arms, rewards)
    split = fresh.update(contexts[:100], arms[:100], rewards[:100]).update(contexts[100:], arms[100:], rewards[100:])
    np.testing.assert_allclose(split.precision, whole.precision)
    np.testing.assert_allclose(split.target, whole.target)
    np.testing.assert_array_equal(fresh.target, 0)  # updates never mutate

    restored = LinearThompson.from_dict(json.loads(json.dumps(whole.to_dict())))
    assert restored.to_dict() == whole.to_dict()
    np.testing.assert_array_equal(
        restored.choose(contexts, np.random.default_rng(3))[0], whole.choose(contexts, np.random.default_rng(3))[0]
    )


def test_linear_posterior_mean_is_the_ridge_solution():
    rng = np.random.default_rng(22)
    contexts = rng.normal(size=(400, 2))
    rewards = 1.0 + contexts @ np.array([0.5, -2.0]) + rng.normal(0, 0.1, 400)
    policy = LinearThompson.new(("only",), 2, ridge=1e-6).update(contexts, np.zeros(400, int), rewards)
    np.testing.assert_allclose(policy.posterior_means()[0], [0.5, -2.0, 1.0], atol=0.03)


# --- invalid inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: BetaThompson.new(["a", "a"]), "names repeat"),
        (lambda: BetaThompson.new([]), "non-empty"),
        (lambda: BetaThompson.new(ARMS, min_share=0.5), "min_share"),
        (lambda: BetaThompson.new(ARMS, prior_alpha=0), "finite positive"),
        (lambda: BetaThompson.new(ARMS).update([0, 1], [1]), "has 1 values but there are 2 units"),
        (lambda: BetaThompson.new(ARMS).update([0, 3], [1, 0]), "outside 0..2"),
        (lambda: BetaThompson.new(ARMS).update(["control", "upsell"], [1, 0]), "unknown arm names 'upsell'"),
        (lambda: BetaThompson.new(ARMS).update([0, 1], [1, 2]), "outside [0, 1]"),
        (lambda: BetaThompson.new(ARMS).update([0, 1], [1, np.nan]), "NaN"),
        (lambda: BetaThompson.new(ARMS).choose(10, None), "rng"),
        (lambda: BetaThompson.new(ARMS).choose(-1, 0), "n: -1"),
        (lambda: BetaThompson.from_dict({"kind": "linear_thompson", "version": 1}), "kind/version"),
        (lambda: BetaThompson.from_dict({**BetaThompson.new(ARMS).to_dict(), "alpha": [1, 1]}), "3 finite positive"),
        (lambda: LinearThompson.new(ARMS, 2).choose(np.zeros((4, 3)), 0), "expected (n, 2)"),
        (lambda: LinearThompson.new(ARMS, 2).update(np.zeros((4, 2)), [0, 1, 2], np.zeros(4)), "contexts has 4 rows"),
        (lambda: LinearThompson.new(ARMS, 2).update([[0, np.inf]], [0], [1.0]), "NaN or infinite"),
        (lambda: LinearThompson.new(ARMS, 2, ridge=0), "ridge"),
        (lambda: LinearThompson.new(ARMS, 2, noise_scale=-1), "noise_scale"),
        (lambda: LinearThompson.from_dict({**LinearThompson.new(ARMS, 2).to_dict(), "n_features": 3}), "expected"),
    ],
)
def test_invalid_bandit_inputs_raise_clear_errors(call, message):
    with pytest.raises(BanditError) as caught:
        call()
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)

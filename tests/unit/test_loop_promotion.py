"""The onboarding loop promotes its greedy candidate only when off-policy evaluation says it wins."""

from __future__ import annotations

import numpy as np
import polars as pl

from growth_loops.bandits import LinearThompson
from growth_loops.loops.catalog import OnboardingBandit


def _logged(rates: dict[str, list[float]], n: int, seed: int) -> pl.DataFrame:
    """Uniformly randomized logs (propensity 1/3) with per-device completion rates per arm."""
    rng = np.random.default_rng(seed)
    devices = rng.choice(list(rates), size=n)
    arms = rng.integers(0, 3, size=n)
    p = np.array([rates[d][a] for d, a in zip(devices, arms, strict=True)])
    return pl.DataFrame({"device_type": devices, "arm": arms, "propensity": np.full(n, 1 / 3),
                         "reward": (rng.random(n) < p).astype(float)})


def _fit(loop: OnboardingBandit, logged: pl.DataFrame) -> LinearThompson:
    policy = LinearThompson.new(list(loop.spec.variants), len(loop.segments), fit_intercept=False,
                                min_share=loop.min_share)
    return policy.update(loop._contexts(logged["device_type"].to_list()), logged["arm"].to_numpy(),
                         logged["reward"].to_numpy())


def test_a_clearly_better_greedy_policy_is_promoted():
    loop = OnboardingBandit()
    logged = _logged({"desktop": [0.3, 0.6, 0.3], "mobile": [0.3, 0.3, 0.6]}, 3000, seed=1)
    verdict = loop._ope(logged, _fit(loop, logged))
    assert verdict is not None and verdict["promote"], verdict
    assert verdict["dr_ci"][0] > verdict["current"]  # the doubly robust lower bound beats the logging policy


def test_no_promotion_when_the_arms_are_the_same_or_the_logs_too_few():
    loop = OnboardingBandit()
    same = _logged({"desktop": [0.4, 0.4, 0.4], "mobile": [0.4, 0.4, 0.4]}, 3000, seed=2)
    verdict = loop._ope(same, _fit(loop, same))
    assert verdict is not None and not verdict["promote"], verdict
    few = same.head(100)
    assert loop._ope(few, _fit(loop, few)) is None

"""Bandits and off-policy evaluation: adaptive policies that log propensities, and proof before promotion.

* ``BetaThompson`` — Beta-Bernoulli Thompson sampling over named arms; ``choose`` returns each
  unit's arm and the exact probability it was played with (exploration floor ``min_share``);
* ``LinearThompson`` — linear Thompson sampling (per-arm Bayesian ridge regression) on contexts,
  with Monte Carlo propensities, posterior-mean reward predictions and a greedy policy;
* ``ips``, ``snips``, ``doubly_robust`` — off-policy value estimates of a candidate's action
  probabilities on logged data, each an ``OpeEstimate`` with a normal-approximation interval;
  ``on_policy_value`` for the logging policy itself and ``evaluate_candidate`` for all three;
* ``should_promote`` — the promotion rule: beat the current value by ``min_lift`` with the lower
  confidence bound above it.

Everything is pure: states are dataclasses that serialise with ``to_dict``, updates return new
states, and randomness comes only from the seeded generator the caller passes.
"""

from growth_loops.bandits.errors import BanditError
from growth_loops.bandits.linear import LinearThompson
from growth_loops.bandits.ope import (
    OpeEstimate,
    PromotionDecision,
    doubly_robust,
    evaluate_candidate,
    ips,
    on_policy_value,
    should_promote,
    snips,
)
from growth_loops.bandits.thompson import BetaThompson

__all__ = [
    "BanditError",
    "BetaThompson",
    "LinearThompson",
    "OpeEstimate",
    "PromotionDecision",
    "doubly_robust",
    "evaluate_candidate",
    "ips",
    "on_policy_value",
    "should_promote",
    "snips",
]

"""Beta-Bernoulli Thompson sampling over K named arms, with logged propensities.

Each arm's success rate has a Beta(alpha, beta) posterior; a success adds one to alpha, a failure
one to beta (rewards in [0, 1] add fractionally). Plain Thompson sampling draws one rate per arm
per unit and plays the largest: it plays arm ``k`` with probability ``P(k is best)`` under the
posterior, which has no closed form for K > 2.

To log a propensity that is *exactly* the probability with which the arm was played, this
sampler does it the other way round: it first estimates ``p_k = P(k is best)`` by Monte Carlo
(``draws`` joint posterior samples, 10,000 by default, from the caller's seeded generator), turns
them into the policy

    pi_k = min_share + (1 - K * min_share) * p_k

and then samples every unit's arm from ``pi``. The logged propensity is ``pi`` of the chosen arm:
right by construction, whatever the Monte Carlo error of ``p`` (that error only makes ``pi`` a
slightly different policy from textbook Thompson sampling, by about ``sqrt(p(1-p)/draws)``, under
0.005 at 10,000 draws). The floor ``min_share`` (0.01 by default) keeps every arm in play, so
inverse-propensity weights of these logs stay below ``1 / min_share`` and any candidate policy
can later be evaluated on them; it costs at most ``(K - 1) * min_share`` of the traffic.

State is explicit and serialisable (``to_dict`` / ``from_dict``); ``update`` returns a new
sampler and leaves the old one untouched, so a decision can always be replayed with the state
that made it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from growth_loops.bandits.errors import (
    BanditError,
    RngLike,
    _arm_indices,
    _as_rng,
    _check_arm_names,
    _check_min_share,
    _check_positive_int,
    _check_vector,
    restore_state,
)

__all__ = ["BetaThompson"]

_KIND = "beta_bernoulli_thompson"
_VERSION = 1


@dataclass(frozen=True, eq=False)
class BetaThompson:
    """Beta-Bernoulli Thompson sampling state: a Beta(alpha, beta) posterior per arm.

    Build a fresh one with ``BetaThompson.new``; the constructor validates the state it is given.

    Attributes:
        arms: Arm names; positions ``0..K-1`` in this order are used everywhere else.
        alpha: Per-arm Beta alpha (prior plus successes), shape (K,), read-only.
        beta: Per-arm Beta beta (prior plus failures), shape (K,), read-only.
        min_share: Exploration floor: every arm is played with probability at least this.
        draws: Monte Carlo posterior draws used by ``choose`` to estimate the propensities.
    """

    arms: tuple[str, ...]
    alpha: np.ndarray
    beta: np.ndarray
    min_share: float = 0.01
    draws: int = 10_000

    def __post_init__(self) -> None:
        arms = _check_arm_names(self.arms)
        k = len(arms)
        alpha, beta = (self._parameter(getattr(self, name), name, k) for name in ("alpha", "beta"))
        object.__setattr__(self, "arms", arms)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "min_share", _check_min_share(self.min_share, k))
        object.__setattr__(self, "draws", _check_positive_int(self.draws, "draws"))

    @staticmethod
    def _parameter(values: Any, name: str, k: int) -> np.ndarray:
        array = np.array(values, dtype=float)  # a private copy: the state never aliases caller data
        if array.shape != (k,) or not np.all(np.isfinite(array) & (array > 0)):
            raise BanditError(
                f"Thompson state {name}",
                f"expected {k} finite positive values (one per arm), got {values!r}",
                "Start from BetaThompson.new(arms) or from a to_dict() of a valid sampler.",
            )
        array.setflags(write=False)
        return array

    @classmethod
    def new(
        cls,
        arms: Sequence[str],
        *,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
        min_share: float = 0.01,
        draws: int = 10_000,
    ) -> BetaThompson:
        """A sampler that has seen no feedback: every arm at Beta(prior_alpha, prior_beta).

        Args:
            arms: Arm names, in the order their positions refer to.
            prior_alpha: Prior pseudo-successes per arm (1 with ``prior_beta`` 1 is uniform).
            prior_beta: Prior pseudo-failures per arm.
            min_share: Per-arm exploration floor, in ``[0, 1/K]``.
            draws: Monte Carlo draws behind ``choose``'s propensities.

        Raises:
            BanditError: when arm names are missing or repeat, a prior is not positive, or
                ``min_share`` is outside ``[0, 1/K]``.
        """
        names = _check_arm_names(arms)
        k = len(names)
        return cls(names, np.full(k, prior_alpha), np.full(k, prior_beta), min_share, draws)

    @property
    def n_arms(self) -> int:
        return len(self.arms)

    def posterior_means(self) -> np.ndarray:
        """Posterior mean success rate per arm, ``alpha / (alpha + beta)``, shape (K,)."""
        return self.alpha / (self.alpha + self.beta)

    def update(self, arms: Any, rewards: Any) -> BetaThompson:
        """The sampler after a batch of feedback; this one is left unchanged.

        Args:
            arms: The arm each unit got, as positions ``0..K-1`` or as arm names, shape (n,).
            rewards: Each unit's reward in ``[0, 1]`` (1 = success), shape (n,). Fractional
                rewards count as fractional successes.

        Returns:
            A new ``BetaThompson`` whose alpha gained each arm's reward sum and whose beta gained
            each arm's ``count - reward sum``.

        Raises:
            BanditError: when the arrays differ in length, an arm is unknown, or a reward is
                outside ``[0, 1]``.
        """
        positions = _arm_indices(arms, self.arms)
        reward = _check_vector(rewards, "rewards", positions.shape[0])
        outside = np.flatnonzero((reward < 0) | (reward > 1))
        if outside.size:
            raise BanditError(
                "rewards",
                f"{outside.size} values are outside [0, 1] (first: {reward[outside[0]]} at row {outside[0]})",
                "Beta-Bernoulli Thompson sampling takes binary (or [0, 1]) rewards; rescale or "
                "binarise the outcome, or use LinearThompson for unbounded rewards.",
            )
        successes = np.bincount(positions, weights=reward, minlength=self.n_arms)
        trials = np.bincount(positions, minlength=self.n_arms)
        return replace(self, alpha=self.alpha + successes, beta=self.beta + trials - successes)

    def arm_probabilities(self, draws: int, rng: RngLike) -> np.ndarray:
        """Monte Carlo estimate of each arm's posterior probability of being the best, shape (K,).

        This is the probability with which plain Thompson sampling plays each arm; it sums to 1.

        Args:
            draws: Joint posterior draws (the estimate's standard error is about
                ``sqrt(p (1 - p) / draws)``).
            rng: Seeded generator (or its seed).
        """
        draws = _check_positive_int(draws, "draws")
        samples = _as_rng(rng).beta(self.alpha, self.beta, size=(draws, self.n_arms))
        return np.bincount(samples.argmax(axis=1), minlength=self.n_arms) / draws

    def policy_probabilities(self, draws: int, rng: RngLike) -> np.ndarray:
        """The probabilities ``choose`` plays each arm with: ``arm_probabilities`` above the floor.

        ``pi_k = min_share + (1 - K * min_share) * P(k is best)``, shape (K,), sums to 1. To
        evaluate this policy off-policy, broadcast it to every logged unit
        (``np.broadcast_to(pi, (n, K))``).
        """
        best = self.arm_probabilities(draws, rng)
        return self.min_share + (1.0 - self.n_arms * self.min_share) * best

    def choose(self, n: int, rng: RngLike) -> tuple[np.ndarray, np.ndarray]:
        """Assign ``n`` units to arms and return each unit's arm and its propensity.

        Args:
            n: Number of units to assign (0 gives empty arrays).
            rng: Seeded generator (or its seed); drives both the propensity estimate and the draws.

        Returns:
            ``(arms, propensities)``: arm positions (int64, shape (n,); names are
            ``self.arms[i]``) and the probability, in ``(0, 1]``, with which each unit's arm was
            played — log it, inverse-propensity estimators need it.
        """
        n = _check_positive_int(n, "n", minimum=0)
        generator = _as_rng(rng)
        pi = self.policy_probabilities(self.draws, generator)
        chosen = generator.choice(self.n_arms, size=n, p=pi)
        return chosen.astype(np.int64), pi[chosen]

    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON-serialisable values; ``from_dict`` restores it exactly."""
        return {
            "kind": _KIND,
            "version": _VERSION,
            "arms": list(self.arms),
            "alpha": self.alpha.tolist(),
            "beta": self.beta.tolist(),
            "min_share": self.min_share,
            "draws": self.draws,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> BetaThompson:
        """Rebuild a sampler from ``to_dict`` output.

        Raises:
            BanditError: when the mapping is not a version-1 Beta-Thompson state or is inconsistent.
        """
        return restore_state(cls, state, kind=_KIND, version=_VERSION, label="Thompson")

"""Linear Thompson sampling (LinTS): a contextual policy with a Bayesian ridge regression per arm.

Each arm ``k`` models the reward of a unit with context ``x`` as ``x . theta_k`` plus noise of
known scale ``noise_scale``, with prior ``theta_k ~ N(0, noise_scale^2 / ridge * I)``. After data
``(X_k, y_k)`` the posterior is

    theta_k ~ N(A_k^-1 b_k, noise_scale^2 A_k^-1),  A_k = ridge * I + X_k' X_k,  b_k = X_k' y_k,

so the state is just ``A`` (K, p, p) and ``b`` (K, p), and a batch update adds ``X'X`` and
``X'y`` per arm. ``fit_intercept`` appends a constant 1 to every context (p = features + 1).
``noise_scale`` doubles as the exploration knob of LinTS: larger means wider posteriors; 0.5 is
the largest standard deviation a [0, 1] reward can have.

LinTS was chosen over LinUCB with epsilon-greedy because its action probabilities are well
defined and estimable: the probability of playing arm ``k`` for context ``x`` is
``P(x . theta_k is the largest)`` under the posterior. ``policy_probabilities`` estimates it by
Monte Carlo over ``draws`` posterior samples of every arm's coefficients (1,000 by default),
shared by all units of the call (common random numbers; the units differ only by their context),
then mixes in a uniform floor:

    pi_k(x) = min_share + (1 - K * min_share) * P_hat(k is best | x).

``choose`` samples each unit's arm from its row of ``pi`` and logs ``pi`` of the chosen arm, so
the logged propensity is exactly the probability the arm was played with (the Monte Carlo error
only makes the policy differ slightly from textbook LinTS), and inverse-propensity weights stay
below ``1 / min_share``.
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
    _sample_rows,
    restore_state,
)

__all__ = ["LinearThompson"]

_KIND = "linear_thompson"
_VERSION = 1
_CHUNK_CELLS = 1_000_000
"""Upper bound on units x draws scores held per arm at once while estimating propensities."""


@dataclass(frozen=True, eq=False)
class LinearThompson:
    """Linear Thompson sampling state: per-arm posterior precision ``A`` and ``b = X'y``.

    Build a fresh one with ``LinearThompson.new``; the constructor validates the state given.

    Attributes:
        arms: Arm names; positions ``0..K-1`` in this order are used everywhere else.
        precision: ``A_k = ridge * I + X_k' X_k`` per arm, shape (K, p, p), read-only.
        target: ``b_k = X_k' y_k`` per arm, shape (K, p), read-only.
        n_features: Number of context columns callers pass (p is one more with an intercept).
        fit_intercept: Whether a constant 1 is appended to every context.
        noise_scale: Assumed reward noise standard deviation; scales posterior samples.
        ridge: Prior precision the state started from (kept for the record).
        min_share: Exploration floor: every arm is played with probability at least this.
        draws: Monte Carlo posterior samples behind ``choose``'s propensities.
    """

    arms: tuple[str, ...]
    precision: np.ndarray
    target: np.ndarray
    n_features: int
    fit_intercept: bool = True
    noise_scale: float = 0.5
    ridge: float = 1.0
    min_share: float = 0.01
    draws: int = 1_000

    def __post_init__(self) -> None:
        arms = _check_arm_names(self.arms)
        k = len(arms)
        n_features = _check_positive_int(self.n_features, "n_features")
        p = n_features + bool(self.fit_intercept)
        precision = np.array(self.precision, dtype=float)
        target = np.array(self.target, dtype=float)
        if precision.shape != (k, p, p) or target.shape != (k, p):
            raise BanditError(
                "LinearThompson state",
                f"precision has shape {precision.shape} and target {target.shape}, expected "
                f"{(k, p, p)} and {(k, p)} for {k} arms and {p} coefficients",
                "Start from LinearThompson.new(arms, n_features) or from a to_dict() of a valid policy.",
            )
        symmetric = np.allclose(precision, precision.transpose(0, 2, 1))
        if not (np.all(np.isfinite(precision)) and np.all(np.isfinite(target)) and symmetric):
            raise BanditError(
                "LinearThompson state",
                "precision or target holds non-finite values, or a precision matrix is not symmetric",
                "Restore the state from an intact to_dict() output.",
            )
        try:
            np.linalg.cholesky(precision)
        except np.linalg.LinAlgError:
            raise BanditError(
                "LinearThompson state",
                "a precision matrix is not positive definite",
                "Restore the state from an intact to_dict() output (ridge must be > 0).",
            ) from None
        for name in ("noise_scale", "ridge"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value > 0):
                raise BanditError(name, f"{value!r} is not a finite positive number", f"Pass {name} > 0.")
            object.__setattr__(self, name, value)
        precision.setflags(write=False)
        target.setflags(write=False)
        object.__setattr__(self, "arms", arms)
        object.__setattr__(self, "precision", precision)
        object.__setattr__(self, "target", target)
        object.__setattr__(self, "n_features", n_features)
        object.__setattr__(self, "fit_intercept", bool(self.fit_intercept))
        object.__setattr__(self, "min_share", _check_min_share(self.min_share, k))
        object.__setattr__(self, "draws", _check_positive_int(self.draws, "draws"))

    @classmethod
    def new(
        cls,
        arms: Sequence[str],
        n_features: int,
        *,
        fit_intercept: bool = True,
        noise_scale: float = 0.5,
        ridge: float = 1.0,
        min_share: float = 0.01,
        draws: int = 1_000,
    ) -> LinearThompson:
        """A policy that has seen no feedback: every arm at its prior ``N(0, noise^2/ridge I)``.

        Args:
            arms: Arm names, in the order their positions refer to.
            n_features: Number of context columns.
            fit_intercept: Append a constant 1 to contexts (a per-arm baseline reward).
            noise_scale: Reward noise standard deviation assumed by the posterior (> 0).
            ridge: Prior precision of every coefficient (> 0); larger shrinks harder to 0.
            min_share: Per-arm exploration floor, in ``[0, 1/K]``.
            draws: Monte Carlo posterior samples behind ``choose``'s propensities.

        Raises:
            BanditError: for missing or repeated arm names, or out-of-range options.
        """
        names = _check_arm_names(arms)
        p = _check_positive_int(n_features, "n_features") + bool(fit_intercept)
        ridge_value = float(ridge)
        if not (np.isfinite(ridge_value) and ridge_value > 0):
            raise BanditError("ridge", f"{ridge!r} is not a finite positive number", "Pass ridge > 0, e.g. 1.0.")
        precision = np.broadcast_to(ridge_value * np.eye(p), (len(names), p, p))
        return cls(
            names,
            precision,
            np.zeros((len(names), p)),
            n_features,
            fit_intercept,
            noise_scale,
            ridge,
            min_share,
            draws,
        )

    @property
    def n_arms(self) -> int:
        return len(self.arms)

    def _design(self, contexts: Any) -> np.ndarray:
        x = np.asarray(contexts, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise BanditError(
                "contexts",
                f"has shape {x.shape}, expected (n, {self.n_features})",
                f"Pass one row per unit with the {self.n_features} features the policy was built with.",
            )
        if not np.all(np.isfinite(x)):
            rows = np.flatnonzero(~np.all(np.isfinite(x), axis=1))
            raise BanditError(
                "contexts",
                f"{rows.size} rows hold NaN or infinite values (first: row {rows[0]})",
                "Impute or drop those units' features before deciding or learning.",
            )
        if self.fit_intercept:
            x = np.hstack([x, np.ones((x.shape[0], 1))])
        return x

    def posterior_means(self) -> np.ndarray:
        """Posterior mean coefficients per arm, shape (K, p) (the intercept last, if fitted)."""
        return np.linalg.solve(self.precision, self.target[..., None])[..., 0]

    def update(self, contexts: Any, arms: Any, rewards: Any) -> LinearThompson:
        """The policy after a batch of feedback; this one is left unchanged.

        Args:
            contexts: Each unit's features when it was assigned, shape (n, n_features).
            arms: The arm each unit got, as positions ``0..K-1`` or as names, shape (n,).
            rewards: Each unit's observed reward (any finite value), shape (n,).

        Raises:
            BanditError: when shapes disagree, an arm is unknown, or a value is not finite.
        """
        x = self._design(contexts)
        positions = _arm_indices(arms, self.arms)
        if positions.shape[0] != x.shape[0]:
            raise BanditError(
                "arms",
                f"has {positions.shape[0]} values but contexts has {x.shape[0]} rows",
                "Pass contexts, arms and rewards for the same units, in the same order.",
            )
        reward = _check_vector(rewards, "rewards", x.shape[0])
        onehot = np.eye(self.n_arms)[positions]  # (n, K)
        gram = np.einsum("nk,ni,nj->kij", onehot, x, x)
        xy = np.einsum("nk,ni->ki", onehot, x * reward[:, None])
        return replace(self, precision=self.precision + gram, target=self.target + xy)

    def expected_rewards(self, contexts: Any) -> np.ndarray:
        """Posterior mean reward of every arm for every context, shape (n, K).

        Fit on one fold of logs, this is the reward model ``doubly_robust`` takes for another.
        """
        return self._design(contexts) @ self.posterior_means().T

    def greedy_policy(self, contexts: Any, *, min_share: float = 0.0) -> np.ndarray:
        """Action probabilities (n, K) of playing the highest posterior-mean arm per context.

        Ties go to the lowest arm position. With ``min_share`` > 0 this is epsilon-greedy
        (every arm gets at least ``min_share``). Use it as a deterministic candidate's
        ``pi(a|x)`` in off-policy evaluation.
        """
        share = _check_min_share(min_share, self.n_arms)
        best = self.expected_rewards(contexts).argmax(axis=1)
        return share + (1.0 - self.n_arms * share) * np.eye(self.n_arms)[best]

    def sample_coefficients(self, draws: int, rng: RngLike) -> np.ndarray:
        """Joint posterior samples of every arm's coefficients, shape (draws, K, p)."""
        draws = _check_positive_int(draws, "draws")
        covariance = np.linalg.inv(self.precision)
        covariance = (covariance + covariance.transpose(0, 2, 1)) / 2
        root = np.linalg.cholesky(covariance) * self.noise_scale  # (K, p, p)
        z = _as_rng(rng).standard_normal((draws, self.n_arms, root.shape[-1]))
        return self.posterior_means()[None] + np.einsum("kij,skj->ski", root, z)

    def arm_probabilities(self, contexts: Any, draws: int, rng: RngLike) -> np.ndarray:
        """Monte Carlo estimate of each arm's posterior probability of being best, shape (n, K).

        Every row sums to 1; the posterior samples are shared by all rows.
        """
        x = self._design(contexts)
        theta = self.sample_coefficients(draws, rng)  # (S, K, p)
        counts = np.zeros((x.shape[0], self.n_arms))
        chunk = max(1, _CHUNK_CELLS // theta.shape[0])
        for start in range(0, x.shape[0], chunk):
            rows = x[start : start + chunk]
            # Running argmax over arms, one (units x draws) score matrix at a time: K is small and
            # this is several times faster than an argmax over a short last axis.
            best_score = rows @ np.ascontiguousarray(theta[:, 0, :]).T
            best = np.zeros(best_score.shape, dtype=np.int32)
            for k in range(1, self.n_arms):
                score = rows @ np.ascontiguousarray(theta[:, k, :]).T
                np.copyto(best, k, where=score > best_score)
                np.maximum(best_score, score, out=best_score)
            for k in range(self.n_arms):
                counts[start : start + chunk, k] = np.count_nonzero(best == k, axis=1)
        return counts / theta.shape[0]

    def policy_probabilities(self, contexts: Any, rng: RngLike, *, draws: int | None = None) -> np.ndarray:
        """The probabilities ``choose`` plays each arm with per context, shape (n, K).

        ``min_share + (1 - K * min_share) * arm_probabilities``, ``draws`` defaulting to
        ``self.draws``. Use it as this policy's ``pi(a|x)`` when evaluating it off-policy.
        """
        best = self.arm_probabilities(contexts, self.draws if draws is None else draws, rng)
        return self.min_share + (1.0 - self.n_arms * self.min_share) * best

    def choose(self, contexts: Any, rng: RngLike) -> tuple[np.ndarray, np.ndarray]:
        """Assign every unit to an arm given its context, with the propensity of that arm.

        Args:
            contexts: Features of the units to assign, shape (n, n_features).
            rng: Seeded generator (or its seed); drives the posterior samples and the draws.

        Returns:
            ``(arms, propensities)``: arm positions (int64, shape (n,)) and the probability, in
            ``(0, 1]``, with which each unit's arm was played.
        """
        generator = _as_rng(rng)
        pi = self.policy_probabilities(contexts, generator)
        chosen = _sample_rows(pi, generator)
        return chosen, pi[np.arange(pi.shape[0]), chosen]

    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON-serialisable values; ``from_dict`` restores it exactly."""
        return {
            "kind": _KIND,
            "version": _VERSION,
            "arms": list(self.arms),
            "precision": self.precision.tolist(),
            "target": self.target.tolist(),
            "n_features": self.n_features,
            "fit_intercept": self.fit_intercept,
            "noise_scale": self.noise_scale,
            "ridge": self.ridge,
            "min_share": self.min_share,
            "draws": self.draws,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> LinearThompson:
        """Rebuild a policy from ``to_dict`` output.

        Raises:
            BanditError: when the mapping is not a version-1 LinTS state or is inconsistent.
        """
        return restore_state(cls, state, kind=_KIND, version=_VERSION, label="LinearThompson")

"""The error bandits and off-policy evaluation raise, and the input checks shared by their modules.

The checks live here, next to the one error they raise, so that ``thompson``, ``linear`` and
``ope`` validate arms, rewards and generators with the same rules and the same messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lake.errors import GrowthlakeError

__all__ = ["BanditError"]

RngLike = np.random.Generator | int
"""A seeded generator, or the integer seed of one; never ``None`` (decisions must be replayable)."""


class BanditError(GrowthlakeError, ValueError):
    """A bandit state, a batch of feedback or a logged dataset for off-policy evaluation is malformed.

    It is also a ``ValueError`` so that callers treating bad arguments generically still catch it.
    """

    def __init__(self, subject: str, problem: str, fix: str) -> None:
        self.subject = subject
        super().__init__(f"{subject}: {problem}. {fix}")


def _as_rng(rng: Any) -> np.random.Generator:
    """The generator to draw from: ``rng`` itself, or a new one seeded with the integer ``rng``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise BanditError(
        "rng",
        f"got {type(rng).__name__}, not a numpy Generator or an integer seed",
        "Pass np.random.default_rng(seed) (or the seed itself) so every draw can be replayed.",
    )


def _check_arm_names(arms: Sequence[str]) -> tuple[str, ...]:
    names = tuple(arms) if not isinstance(arms, str) else (arms,)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise BanditError(
            "arms",
            f"expected a non-empty sequence of non-empty strings, got {arms!r}",
            "Name every arm, e.g. ('control', 'discount_10', 'free_trial').",
        )
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise BanditError("arms", f"names repeat: {', '.join(duplicates)}", "Give every arm a distinct name.")
    return names


def _check_min_share(min_share: float, n_arms: int) -> float:
    share = float(min_share)
    if not (np.isfinite(share) and share >= 0.0 and share * n_arms <= 1.0 + 1e-12):
        raise BanditError(
            "min_share",
            f"{min_share!r} with {n_arms} arms is not in [0, 1/{n_arms}]",
            "Use a small per-arm exploration floor such as 0.01; 1/K means uniformly random.",
        )
    return share


def _check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise BanditError(name, f"{value!r} is not an integer >= {minimum}", f"Pass an integer {name} >= {minimum}.")
    return int(value)


def _arm_indices(arms: Any, names: tuple[str, ...], subject: str = "arms") -> np.ndarray:
    """Arm positions ``0..K-1`` from a 1-D array of positions or of arm names."""
    values = np.asarray(arms)
    if values.ndim != 1:
        raise BanditError(subject, f"expected a 1-D array, got shape {values.shape}", "Pass one arm per unit.")
    if values.dtype.kind in "US" or (values.dtype == object and all(isinstance(v, str) for v in values)):
        position = {name: i for i, name in enumerate(names)}
        unknown = sorted({str(v) for v in values if str(v) not in position})
        if unknown:
            raise BanditError(
                subject,
                f"unknown arm names {', '.join(map(repr, unknown[:5]))} (the arms are {', '.join(names)})",
                "Log the name of one of the policy's arms, or its position 0..K-1.",
            )
        return np.fromiter((position[str(v)] for v in values), dtype=np.int64, count=len(values))
    return _check_arm_positions(values, len(names), subject)


def _check_arm_positions(values: np.ndarray, n_arms: int, subject: str = "arms") -> np.ndarray:
    whole = values.dtype.kind in "iu" or (
        values.dtype.kind == "f" and bool(np.all(np.isfinite(values) & (values == np.round(values))))
    )
    if values.size and not whole:
        raise BanditError(
            subject,
            f"values of dtype {values.dtype} are not whole arm positions",
            f"Pass integer arm positions 0..{n_arms - 1}.",
        )
    positions = values.astype(np.int64)
    bad = np.flatnonzero((positions < 0) | (positions >= n_arms))
    if bad.size:
        raise BanditError(
            subject,
            f"{bad.size} values are outside 0..{n_arms - 1} (first: {positions[bad[0]]} at row {bad[0]})",
            f"Arm positions index the {n_arms} arms; check the arm order used when logging.",
        )
    return positions


def _check_vector(values: Any, subject: str, n: int | None = None) -> np.ndarray:
    """A finite 1-D float array, of length ``n`` when given."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise BanditError(subject, f"expected a 1-D array, got shape {array.shape}", "Pass one value per unit.")
    if n is not None and array.shape[0] != n:
        raise BanditError(
            subject,
            f"has {array.shape[0]} values but there are {n} units",
            "Pass arms, propensities, rewards and probabilities for the same units, in the same order.",
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise BanditError(
            subject,
            f"{bad.size} values are NaN or infinite (first at row {bad[0]})",
            "Drop or repair those units before using them.",
        )
    return array


def _check_matrix(values: Any, subject: str, shape: tuple[int, int]) -> np.ndarray:
    """A finite 2-D float array of exactly ``shape``."""
    array = np.asarray(values, dtype=float)
    if array.shape != shape:
        raise BanditError(
            subject,
            f"has shape {array.shape}, expected {shape} (units x arms)",
            "Pass one row per logged unit and one column per arm, in the policy's arm order.",
        )
    if not np.all(np.isfinite(array)):
        rows = np.flatnonzero(~np.all(np.isfinite(array), axis=1))
        raise BanditError(
            subject,
            f"{rows.size} rows hold NaN or infinite values (first: row {rows[0]})",
            "Repair those rows before using them.",
        )
    return array


def _sample_rows(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One arm per row of an (n, K) matrix of action probabilities, by inverse-CDF sampling."""
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(probabilities.shape[0]) * cumulative[:, -1]  # rows sum to 1 up to rounding
    chosen = (cumulative <= u[:, None]).sum(axis=1)
    return np.minimum(chosen, probabilities.shape[1] - 1).astype(np.int64)


def restore_state(cls: Any, state: Any, *, kind: str, version: int, label: str) -> Any:
    """Rebuild a frozen policy dataclass from its ``to_dict`` output, checking kind and version."""
    from dataclasses import fields

    if state.get("kind") != kind or state.get("version") != version:
        raise BanditError(
            f"{label} state",
            f"kind/version is {state.get('kind')!r}/{state.get('version')!r}, expected {kind!r}/{version}",
            f"Pass the output of {cls.__name__}.to_dict().",
        )
    try:
        return cls(**{field.name: state[field.name] for field in fields(cls)})
    except KeyError as missing:
        raise BanditError(
            f"{label} state", f"key {missing} is missing", f"Pass the complete output of {cls.__name__}.to_dict()."
        ) from None

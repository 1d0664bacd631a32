"""Deterministic, sticky, salted assignment of units to variations, bucket-compatible with GrowthBook.

A unit's bucket is GrowthBook's hash version 2 of ``seed + unit_id``::

    n = fnv1a32(str(fnv1a32(seed + unit_id)))
    bucket = (n % 10000) / 10000

where ``fnv1a32`` is 32-bit FNV-1a over the string's UTF-16 code units (the JS SDK's
``charCodeAt`` loop; for ASCII ids these are simply the bytes). The bucket picks a variation
through GrowthBook's bucket ranges: variation ``i`` owns ``[c_i, c_i + coverage * w_i)`` where
``c_i`` is the sum of the weights before it, and a bucket in no range is not in the experiment.
So a GrowthBook SDK evaluating an experiment rule with ``hashVersion: 2`` and the same seed,
weights and coverage serves every unit the variation computed here.

Consequences worth knowing:

* Sticky: the same (seed, weights, coverage) always gives the same answer, and raising the
  coverage only adds units: everyone already in keeps their variation.
* Changing the weights moves units between variations (as in GrowthBook); start a new phase
  with a new seed instead of editing the weights of a running experiment.
* Different seeds give independent assignments, so experiments and the global holdout do not
  line up with each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import TypeGuard

import numpy as np
import polars as pl

from growth_loops.experiments.errors import ExperimentError

__all__ = [
    "DEFAULT_HOLDOUT_SEED",
    "DEFAULT_HOLDOUT_SHARE",
    "HASH_BUCKETS",
    "WEIGHT_TOLERANCE",
    "assign",
    "assign_many",
    "bucket",
    "bucket_many",
    "bucket_ranges",
    "check_weights",
    "fnv1a32",
    "in_holdout",
    "in_holdout_many",
]

HASH_BUCKETS = 10_000
"""Resolution of GrowthBook's version-2 hash: buckets are multiples of 1/10000."""

WEIGHT_TOLERANCE = 1e-6
"""How far from 1 the variation weights may sum (GrowthBook itself tolerates 0.99-1.01)."""

DEFAULT_HOLDOUT_SEED = "global-holdout"
DEFAULT_HOLDOUT_SHARE = 0.05

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK32 = 0xFFFFFFFF
_POWERS_OF_TEN = np.array([10**k for k in range(10)], dtype=np.int64)  # a uint32 has <= 10 digits


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a of ``text`` over its UTF-16 code units, exactly as GrowthBook's SDKs hash.

    Args:
        text: Any string; non-ASCII characters hash as their UTF-16 code units (a character
            outside the Basic Multilingual Plane contributes its two surrogates).

    Returns:
        The hash as an integer in ``[0, 2**32)``.
    """
    return _fnv_update(_FNV_OFFSET, text)


def bucket(unit_id: str, *, seed: str) -> float:
    """GrowthBook hash version 2 of ``seed + unit_id``: a bucket in ``[0, 1)`` on a 1/10000 grid.

    Args:
        unit_id: The unit's id as the SDK sees it (a string).
        seed: The experiment's seed (GrowthBook: ``experiment.seed``, else its key).

    Returns:
        ``(n % 10000) / 10000`` with ``n = fnv1a32(str(fnv1a32(seed + unit_id)))``.

    Raises:
        ExperimentError: (a ``ValueError``) when ``unit_id`` is not a string or the seed is
            not a non-empty string.
    """
    _check_seed(seed)
    _check_unit_id(unit_id)
    n = fnv1a32(str(fnv1a32(seed + unit_id)))
    return (n % HASH_BUCKETS) / HASH_BUCKETS


def bucket_many(unit_ids: Sequence[str | None] | pl.Series, *, seed: str) -> np.ndarray:
    """Vectorised :func:`bucket`: the buckets of many units, NaN where the id is missing.

    Args:
        unit_ids: Unit ids: a sequence of strings (``None`` = missing) or a string-typed
            polars Series (null = missing).
        seed: The experiment's seed.

    Returns:
        A float64 array with one bucket per id, in input order.

    Raises:
        ExperimentError: when the seed is not a non-empty string or an id is not a string.
    """
    _check_seed(seed)
    ids, missing = _id_list(unit_ids)
    buckets = (_hash_v2_many(ids, seed) % HASH_BUCKETS).astype(np.float64) / HASH_BUCKETS
    buckets[missing] = np.nan
    return buckets


def check_weights(weights: Sequence[float]) -> tuple[float, ...]:
    """Validate variation weights and return them as a tuple of floats.

    Args:
        weights: One weight per variation (control first): at least two, each finite and
            non-negative, summing to 1 within :data:`WEIGHT_TOLERANCE`.

    Returns:
        The weights as floats, unchanged (not renormalised, so the bucket ranges are exactly
        those a GrowthBook SDK computes from the same weights).

    Raises:
        ExperimentError: (a ``ValueError``) naming what is wrong with the weights.
    """
    if isinstance(weights, (str, bytes)) or not isinstance(weights, (Sequence, np.ndarray)):
        raise ExperimentError(
            "weights",
            f"expected a sequence of numbers, got {type(weights).__name__}",
            "Pass one weight per variation, control first, e.g. weights=[0.5, 0.5].",
        )
    values = list(weights)
    if len(values) < 2:
        raise ExperimentError(
            "weights",
            f"{len(values)} variation(s) given, but an experiment needs a control and at least one treatment",
            "Pass one weight per variation, control first, e.g. weights=[0.5, 0.5].",
        )
    bad = [w for w in values if not _is_real(w) or not math.isfinite(w) or w < 0]
    if bad:
        raise ExperimentError(
            "weights",
            f"every weight must be a finite, non-negative number, got {bad[0]!r} in {values!r}",
            "Fix the weights, e.g. weights=[0.5, 0.5].",
        )
    total = math.fsum(float(w) for w in values)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ExperimentError(
            "weights",
            f"they sum to {total!r}, not 1 (within {WEIGHT_TOLERANCE:g})",
            "Give the share of the experiment's traffic each variation gets, summing to 1; "
            "to run on part of the traffic, use `coverage` rather than weights summing to less than 1.",
        )
    return tuple(float(w) for w in values)


def bucket_ranges(weights: Sequence[float], *, coverage: float = 1.0) -> tuple[tuple[float, float], ...]:
    """GrowthBook's ``getBucketRanges``: the half-open bucket range ``[start, end)`` of each variation.

    Variation ``i`` starts at the sum of the weights before it and covers ``coverage * w_i`` of
    the bucket space; the arithmetic is the SDK's, float for float.

    Args:
        weights: Variation weights (see :func:`check_weights`).
        coverage: Share of units included in the experiment, ``0 < coverage <= 1``.

    Returns:
        One ``(start, end)`` pair per variation.

    Raises:
        ExperimentError: when the weights or the coverage are invalid.
    """
    checked = check_weights(weights)
    _check_coverage(coverage)
    cumulative = 0.0
    ranges = []
    for weight in checked:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return tuple(ranges)


def assign(unit_id: str, *, seed: str, weights: Sequence[float], coverage: float = 1.0) -> int | None:
    """The variation a unit gets: the same answer as a GrowthBook SDK with ``hashVersion: 2``.

    Args:
        unit_id: The unit's id (the SDK's hash attribute, e.g. the ``id`` attribute).
        seed: The experiment's seed (GrowthBook: ``experiment.seed``, else its key).
        weights: One weight per variation, control (index 0) first, summing to 1.
        coverage: Share of units included in the experiment, ``0 < coverage <= 1``.

    Returns:
        The variation index, or None when the unit is not in the experiment (outside the
        coverage, or an empty id: GrowthBook never enrols a unit without a hash value).

    Raises:
        ExperimentError: (a ``ValueError``) when the seed, weights or coverage are invalid or
            the unit id is not a string.
    """
    ranges = bucket_ranges(weights, coverage=coverage)
    n = bucket(unit_id, seed=seed)
    if unit_id == "":
        return None
    for index, (start, end) in enumerate(ranges):
        if start <= n < end:
            return index
    return None


def assign_many(
    unit_ids: Sequence[str | None] | pl.Series,
    *,
    seed: str,
    weights: Sequence[float],
    coverage: float = 1.0,
) -> np.ndarray:
    """Vectorised :func:`assign`: the variation of every unit, -1 for units not in the experiment.

    Args:
        unit_ids: Unit ids: a sequence of strings or a string-typed polars Series. Missing
            ids (``None`` / null) and empty strings are not in the experiment.
        seed: The experiment's seed.
        weights: One weight per variation, control first, summing to 1.
        coverage: Share of units included in the experiment, ``0 < coverage <= 1``.

    Returns:
        An int64 array, one variation index (or -1) per id, in input order.

    Raises:
        ExperimentError: (a ``ValueError``) when the seed, weights or coverage are invalid or
            an id is neither a string nor missing.
    """
    ranges = bucket_ranges(weights, coverage=coverage)
    _check_seed(seed)
    ids, missing = _id_list(unit_ids)
    buckets = (_hash_v2_many(ids, seed) % HASH_BUCKETS).astype(np.float64) / HASH_BUCKETS
    variation = np.full(len(ids), -1, dtype=np.int64)
    # Walk the ranges backwards so that, as in the SDK's chooseVariation, the first match wins.
    for index in range(len(ranges) - 1, -1, -1):
        start, end = ranges[index]
        variation[(buckets >= start) & (buckets < end)] = index
    variation[missing] = -1
    if ids:
        variation[np.fromiter((not unit for unit in ids), dtype=bool, count=len(ids))] = -1
    return variation


def in_holdout(unit_id: str, *, seed: str = DEFAULT_HOLDOUT_SEED, share: float = DEFAULT_HOLDOUT_SHARE) -> bool:
    """Whether a unit is in the global holdout, the units no growth loop may touch.

    The holdout is the first variation of a GrowthBook experiment with weights
    ``[share, 1 - share]`` and this seed, so an SDK can enforce the same holdout with that rule.

    Args:
        unit_id: The unit's id.
        seed: The holdout's seed; keep it fixed for the lifetime of the holdout.
        share: The share of units held out, ``0 < share < 1``.

    Returns:
        True when the unit is held out (an empty id never is: it cannot be tracked).

    Raises:
        ExperimentError: when the share or seed is invalid or the id is not a string.
    """
    _check_share(share)
    return assign(unit_id, seed=seed, weights=[share, 1.0 - share]) == 0


def in_holdout_many(
    unit_ids: Sequence[str | None] | pl.Series,
    *,
    seed: str = DEFAULT_HOLDOUT_SEED,
    share: float = DEFAULT_HOLDOUT_SHARE,
) -> np.ndarray:
    """Vectorised :func:`in_holdout`: a boolean array, False for missing or empty ids.

    Raises:
        ExperimentError: when the share or seed is invalid or an id is not a string.
    """
    _check_share(share)
    return assign_many(unit_ids, seed=seed, weights=[share, 1.0 - share]) == 0


# -- hashing ---------------------------------------------------------------------------------


def _fnv_update(state: int, text: str) -> int:
    if text.isascii():
        for unit in text.encode():
            state = ((state ^ unit) * _FNV_PRIME) & _MASK32
    else:
        data = text.encode("utf-16-le", "surrogatepass")
        for i in range(0, len(data), 2):
            state = ((state ^ (data[i] | (data[i + 1] << 8))) * _FNV_PRIME) & _MASK32
    return state


def _hash_v2_many(ids: list[str], seed: str) -> np.ndarray:
    """``fnv1a32(str(fnv1a32(seed + id)))`` for every id, as a uint32 array (numpy, no Python loop per id)."""
    first = _fnv_continue_many(ids, _fnv_update(_FNV_OFFSET, seed))
    return _fnv_of_decimal_many(first)


def _fnv_continue_many(ids: list[str], state: int) -> np.ndarray:
    """Continue FNV-1a from ``state`` over each id's UTF-16 code units, all ids at once.

    Ids are processed sorted by length, so at code-unit position ``j`` the ids still running
    are a suffix of that order and each step is one slice operation.
    """
    count = len(ids)
    hashes = np.full(count, state, dtype=np.uint32)
    if count == 0:
        return hashes
    joined = "".join(ids)
    units = np.frombuffer(joined.encode("utf-16-le", "surrogatepass"), dtype="<u2").astype(np.uint32)
    if joined.isascii():
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=count)
    else:
        lengths = np.fromiter(
            (len(unit.encode("utf-16-le", "surrogatepass")) // 2 for unit in ids), dtype=np.int64, count=count
        )
    offsets = np.zeros(count, dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    order = np.argsort(lengths, kind="stable")
    sorted_lengths, sorted_offsets = lengths[order], offsets[order]
    running = hashes[order]
    prime = np.uint32(_FNV_PRIME)
    for position in range(int(sorted_lengths[-1])):
        first = int(np.searchsorted(sorted_lengths, position, side="right"))
        code_units = units[sorted_offsets[first:] + position]
        running[first:] = (running[first:] ^ code_units) * prime  # uint32 arithmetic wraps mod 2**32
    hashes[order] = running
    return hashes


def _fnv_of_decimal_many(values: np.ndarray) -> np.ndarray:
    """``fnv1a32(str(v))`` for every uint32 ``v``: hash the decimal digits, most significant first."""
    numbers = values.astype(np.int64)
    digits = 1 + (numbers[:, None] >= _POWERS_OF_TEN[None, 1:]).sum(axis=1)
    hashes = np.full(len(numbers), _FNV_OFFSET, dtype=np.uint32)
    prime = np.uint32(_FNV_PRIME)
    for position in range(int(digits.max(initial=0))):
        running = digits > position
        power = _POWERS_OF_TEN[np.maximum(digits - 1 - position, 0)]
        code_unit = ((numbers // power) % 10 + ord("0")).astype(np.uint32)
        hashes = np.where(running, (hashes ^ code_unit) * prime, hashes)
    return hashes


# -- validation ------------------------------------------------------------------------------


def _is_real(value: object) -> TypeGuard[float]:
    """A real number other than a bool (int, float, numpy's, Fraction…), which compares as a float."""
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _check_seed(seed: object) -> None:
    if not isinstance(seed, str) or not seed:
        raise ExperimentError(
            "seed",
            f"expected a non-empty string, got {seed!r}",
            "Use the experiment's GrowthBook seed (or its key), fixed for the experiment's lifetime.",
        )


def _check_unit_id(unit_id: object) -> None:
    if not isinstance(unit_id, str):
        raise ExperimentError(
            "unit_id",
            f"expected a string, got {type(unit_id).__name__} {unit_id!r}",
            "Pass the id as the SDK hashes it, as a string (e.g. str(user_id)).",
        )


def _check_coverage(coverage: object) -> None:
    if not _is_real(coverage) or not (0.0 < coverage <= 1.0):
        raise ExperimentError(
            "coverage",
            f"must be a number with 0 < coverage <= 1, got {coverage!r}",
            "Give the share of units to include, e.g. coverage=0.2 for 20%; to stop enrolling, "
            "stop the experiment instead of setting coverage to 0.",
        )


def _check_share(share: object) -> None:
    if not _is_real(share) or not (0.0 < share < 1.0):
        raise ExperimentError(
            "share",
            f"the holdout share must be a number with 0 < share < 1, got {share!r}",
            "Give the share of units to hold out, e.g. share=0.05 for 5%.",
        )


def _id_list(unit_ids: object) -> tuple[list[str], np.ndarray]:
    """The ids as strings ("" where missing) and a mask of the missing ones."""
    if isinstance(unit_ids, pl.Series):
        if isinstance(unit_ids.dtype, (pl.Categorical, pl.Enum)):
            unit_ids = unit_ids.cast(pl.String)
        if unit_ids.dtype != pl.String:
            raise ExperimentError(
                "unit_ids",
                f"the Series {unit_ids.name!r} has dtype {unit_ids.dtype}, not String",
                "Cast the ids to strings the way the SDK sees them, e.g. `series.cast(pl.String)`.",
            )
        missing = unit_ids.is_null().to_numpy()
        return unit_ids.fill_null("").to_list(), missing
    if isinstance(unit_ids, (str, bytes)) or not isinstance(unit_ids, (Sequence, np.ndarray)):
        raise ExperimentError(
            "unit_ids",
            f"expected a sequence of string ids or a polars Series, got {type(unit_ids).__name__}",
            "Pass a list of ids (use `assign` for a single id).",
        )
    ids: list[str] = []
    missing = np.zeros(len(unit_ids), dtype=bool)
    for position, unit in enumerate(unit_ids):
        if unit is None:
            missing[position] = True
            ids.append("")
        elif isinstance(unit, str):
            ids.append(unit)
        else:
            raise ExperimentError(
                "unit_ids",
                f"id at position {position} is {type(unit).__name__} {unit!r}, not a string",
                "Convert the ids to strings the way the SDK sees them (e.g. str(user_id)).",
            )
    return ids, missing

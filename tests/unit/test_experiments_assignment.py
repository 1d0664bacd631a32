"""Assignment: deterministic, sticky, salted, weighted buckets that a GrowthBook SDK agrees with."""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
import types

import numpy as np
import polars as pl
import pytest
from scipy import stats

from growth_loops.experiments import (
    ExperimentError,
    assign,
    assign_many,
    bucket,
    bucket_many,
    bucket_ranges,
    fnv1a32,
    in_holdout,
    in_holdout_many,
)
from lake.errors import GrowthlakeError

N = 100_000
IDS = [f"user-{i}" for i in range(N)]
ODD_IDS = ["", "a", "ü", "日本語", "😀", "emoji-😀-tail", "ab\u00e9", "x" * 300, "123", '___)((*":&']


def within_binomial(count: int, n: int, p: float, sds: float = 4.0) -> bool:
    """Whether ``count`` is within ``sds`` binomial standard deviations of ``n * p``."""
    return abs(count - n * p) <= sds * np.sqrt(n * p * (1 - p))


# -- the hash itself -------------------------------------------------------------------------

# GrowthBook's cross-SDK conformance cases (sdk-js/test/cases.json, "hash", version 2):
# (seed, value, expected bucket); plus one non-ASCII case computed with growthbook 4.0.0's gbhash.
HASH_V2_CASES = [
    ("seed", "a", 0.0505),
    ("seed", "b", 0.2696),
    ("foo", "ab", 0.2575),
    ("foo", "def", 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 0.124),
    ("90850943850283058242805", "123", 0.7516),
    ("()**(%$##$%#$#", '___)((*":&', 0.0128),
    ("s", "ü😀", 0.5456),
]


@pytest.mark.parametrize(("seed", "value", "expected"), HASH_V2_CASES)
def test_bucket_matches_growthbook_conformance_cases(seed, value, expected):
    assert bucket(value, seed=seed) == expected
    assert bucket_many([value], seed=seed)[0] == expected


@pytest.mark.parametrize(
    ("text", "mod_1000"),
    [("a", 220), ("b", 77), ("ab", 946), ("def", 652), ("8952klfjas09ujkasdf", 549), ("123", 11)],
)
def test_fnv1a32_matches_the_js_sdk(text, mod_1000):
    assert fnv1a32(text) % 1000 == mod_1000


def test_vectorised_buckets_equal_scalar_ones_including_non_ascii_ids():
    ids = IDS[:2000] + ODD_IDS
    expected = np.array([bucket(unit, seed="exp-1") for unit in ids])
    np.testing.assert_array_equal(bucket_many(ids, seed="exp-1"), expected)
    assert np.isnan(bucket_many(["a", None], seed="exp-1")[1])


@pytest.mark.parametrize(
    ("weights", "coverage", "expected"),
    [
        ([0.5, 0.5], 1.0, [(0, 0.5), (0.5, 1)]),
        ([0.5, 0.5], 0.5, [(0, 0.25), (0.5, 0.75)]),
        ([0.4, 0.6], 0.1, [(0, 0.04), (0.4, 0.46)]),
        ([0.25, 0.25, 0.25, 0.25], 1.0, [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ],
)
def test_bucket_ranges_follow_growthbook(weights, coverage, expected):
    ranges = bucket_ranges(weights, coverage=coverage)
    assert np.asarray(ranges) == pytest.approx(np.asarray(expected, dtype=float))


# -- assignment behaviour --------------------------------------------------------------------


def test_assignment_is_deterministic_and_scalar_equals_vectorised():
    ids = IDS[:3000] + ODD_IDS
    first = assign_many(ids, seed="checkout-v2", weights=[0.2, 0.3, 0.5], coverage=0.7)
    again = assign_many(list(reversed(ids)), seed="checkout-v2", weights=[0.2, 0.3, 0.5], coverage=0.7)[::-1]
    scalar = [assign(unit, seed="checkout-v2", weights=[0.2, 0.3, 0.5], coverage=0.7) for unit in ids]
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, [-1 if v is None else v for v in scalar])
    assert assign("", seed="checkout-v2", weights=[0.5, 0.5]) is None  # no id, never enrolled


def test_raising_coverage_keeps_everyone_in_their_variation():
    low = assign_many(IDS, seed="onboarding", weights=[0.5, 0.5], coverage=0.3)
    high = assign_many(IDS, seed="onboarding", weights=[0.5, 0.5], coverage=0.8)
    enrolled = low >= 0
    np.testing.assert_array_equal(high[enrolled], low[enrolled])
    assert (high >= 0).sum() > enrolled.sum()


def test_weights_are_respected_within_binomial_tolerance():
    weights = [0.2, 0.3, 0.5]
    counts = np.bincount(assign_many(IDS, seed="pricing-page", weights=weights), minlength=3)
    assert counts.sum() == N
    for count, weight in zip(counts, weights, strict=True):
        assert within_binomial(int(count), N, weight)


def test_coverage_enrols_its_share_and_keeps_the_weights_among_enrolled():
    variation = assign_many(IDS, seed="paywall", weights=[0.25, 0.75], coverage=0.4)
    enrolled = variation >= 0
    assert within_binomial(int(enrolled.sum()), N, 0.4)
    assert within_binomial(int((variation == 0).sum()), int(enrolled.sum()), 0.25)


def test_different_seeds_assign_independently():
    a = assign_many(IDS, seed="exp-a", weights=[0.5, 0.5])
    b = assign_many(IDS, seed="exp-b", weights=[0.5, 0.5])
    table = np.array([[np.sum((a == i) & (b == j)) for j in (0, 1)] for i in (0, 1)])
    assert stats.chi2_contingency(table).pvalue > 0.01
    assert 0.45 < np.mean(a == b) < 0.55  # not the same split under another name


def test_global_holdout_has_its_share_and_ignores_experiment_seeds():
    held = in_holdout_many(IDS)
    assert within_binomial(int(held.sum()), N, 0.05)
    assert [in_holdout(unit) for unit in IDS[:2000]] == held[:2000].tolist()
    variation = assign_many(IDS, seed="exp-a", weights=[0.5, 0.5])
    table = np.array(
        [
            [np.sum(held & (variation == 0)), np.sum(held & (variation == 1))],
            [np.sum(~held & (variation == 0)), np.sum(~held & (variation == 1))],
        ]
    )
    assert stats.chi2_contingency(table).pvalue > 0.01
    assert within_binomial(int(in_holdout_many(IDS, share=0.2, seed="h2").sum()), N, 0.2)
    assert not in_holdout("")


def test_polars_series_input_with_nulls_and_categoricals():
    series = pl.Series("user_id", ["u1", None, "u2", "u3"])
    expected = [assign(u, seed="s", weights=[0.5, 0.5]) for u in ("u1", "u2", "u3")]
    out = assign_many(series, seed="s", weights=[0.5, 0.5])
    assert out.dtype == np.int64
    assert out.tolist() == [expected[0], -1, expected[1], expected[2]]
    np.testing.assert_array_equal(assign_many(series.cast(pl.Categorical), seed="s", weights=[0.5, 0.5]), out)
    assert assign_many([], seed="s", weights=[0.5, 0.5]).shape == (0,)


# -- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "subject"),
    [
        ({"weights": [0.5, 0.4]}, "weights"),
        ({"weights": [1.0]}, "weights"),
        ({"weights": [1.2, -0.2]}, "weights"),
        ({"weights": [0.5, float("nan")]}, "weights"),
        ({"weights": "ab"}, "weights"),
        ({"weights": [0.5, 0.5], "coverage": 0.0}, "coverage"),
        ({"weights": [0.5, 0.5], "coverage": 1.5}, "coverage"),
        ({"weights": [0.5, 0.5], "seed": ""}, "seed"),
    ],
)
def test_bad_experiment_definitions_are_refused(kwargs, subject):
    call = {"seed": "exp", **kwargs}
    for fn, unit in ((assign, "u1"), (assign_many, ["u1"])):
        with pytest.raises(ExperimentError) as info:
            fn(unit, **call)
        assert info.value.subject == subject
        assert isinstance(info.value, ValueError) and isinstance(info.value, GrowthlakeError)


def test_bad_ids_and_holdout_shares_are_refused():
    with pytest.raises(ExperimentError, match="unit_id: expected a string"):
        assign(42, seed="s", weights=[0.5, 0.5])
    with pytest.raises(ExperimentError, match="position 1"):
        assign_many(["a", 7], seed="s", weights=[0.5, 0.5])
    with pytest.raises(ExperimentError, match="use `assign` for a single id"):
        assign_many("user-1", seed="s", weights=[0.5, 0.5])
    with pytest.raises(ExperimentError, match=r"cast\(pl.String\)"):
        assign_many(pl.Series([1, 2]), seed="s", weights=[0.5, 0.5])
    for share in (0.0, 1.0, -0.1):
        with pytest.raises(ExperimentError, match="share"):
            in_holdout("u", share=share)


# -- the real SDK ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def growthbook_sdk():
    """The GrowthBook Python SDK's ``core`` and ``common_types`` modules, or skip.

    Found on ``sys.path`` (an installed ``growthbook``) or at ``$GROWTHBOOK_SDK_PATH`` (a
    directory or a downloaded wheel, e.g. ``pip download growthbook==4.0.0 --no-deps``). Only
    the two pure modules are loaded, under a private name, so the SDK's networking
    dependencies (aiohttp, cryptography) need not be installed.
    """
    location = os.environ.get("GROWTHBOOK_SDK_PATH")
    spec = importlib.machinery.PathFinder.find_spec("growthbook", [location] if location else None)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the GrowthBook SDK is not importable (set GROWTHBOOK_SDK_PATH to its wheel)")
    package = types.ModuleType("_growthbook_sdk")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["_growthbook_sdk"] = package
    try:
        core = importlib.import_module("_growthbook_sdk.core")
        common = importlib.import_module("_growthbook_sdk.common_types")
    except ImportError as exc:
        pytest.skip(f"the GrowthBook SDK could not be loaded: {exc}")
    yield core, common
    for name in [name for name in sys.modules if name.startswith("_growthbook_sdk")]:
        del sys.modules[name]


@pytest.mark.parametrize(
    ("seed", "weights", "coverage"),
    [("checkout-v2", [0.5, 0.5], 1.0), ("pricing", [0.2, 0.3, 0.5], 0.6), ("holdout", [0.05, 0.95], 1.0)],
)
def test_matches_the_growthbook_sdk_on_10k_ids(growthbook_sdk, seed, weights, coverage):
    core, common = growthbook_sdk
    ids = IDS[: 10_000 - len(ODD_IDS)] + ODD_IDS

    def sdk_variation(unit: str) -> int:
        context = common.EvaluationContext(
            user=common.UserContext(attributes={"id": unit}),
            global_ctx=common.GlobalContext(options=common.Options()),
            stack=common.StackContext(),
        )
        experiment = common.Experiment(
            key="unused-when-seeded",
            variations=list(range(len(weights))),
            weights=list(weights),
            coverage=coverage,
            hashVersion=2,
            seed=seed,
        )
        result = core.run_experiment(experiment, evalContext=context)
        return result.variationId if result.inExperiment else -1

    np.testing.assert_array_equal(bucket_many(ids, seed=seed), [core.gbhash(seed, unit, 2) for unit in ids])
    ours = assign_many(ids, seed=seed, weights=weights, coverage=coverage)
    theirs = np.array([sdk_variation(unit) for unit in ids])
    np.testing.assert_array_equal(ours, theirs)
    assert set(theirs.tolist()) == {-1, *range(len(weights))}  # every outcome exercised ("" is never in)

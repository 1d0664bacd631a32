"""GrowthBook parity: our effects equal GrowthBook's stats engine (gbstats) on fixed cases.

Two references. ``tests/fixtures/gbstats/gbstats_0_8_0.json`` holds gbstats 0.8.0's outputs for
the cases of ``tests/fixtures/gbstats/cases.py`` (ratio metrics, CUPED, relative and absolute
scales, frequentist and Bayesian; regenerate with ``generate.py`` — 0.8.0 needs numpy < 2, so it
runs in a throwaway environment). The pinned test dependency ``gbstats`` (0.2.1, what pip resolves
beside numpy 2) is compared live: its Bayesian test puts a log-normal on the ratio of means, an
older approximation of the same chance to win and relative interval, so it agrees to within the
difference of the two approximations.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from growth_loops.experiments import (
    CupedStats,
    ExperimentError,
    MeanStats,
    ProportionStats,
    RatioStats,
    cuped_effect,
    effect,
)
from tests.fixtures.gbstats.cases import CASES

REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "gbstats" / "gbstats_0_8_0.json").read_text())


def _stats(spec: dict):
    kind = spec["kind"]
    if kind == "proportion":
        return ProportionStats(spec["n"], spec["sum"], spec["sum"])
    if kind == "mean":
        return MeanStats(spec["n"], spec["sum"], spec["sum_squares"])
    if kind == "ratio":
        return RatioStats(_stats(spec["numerator"]), _stats(spec["denominator"]), spec["sum_products"])
    return CupedStats(_stats(spec["post"]), _stats(spec["pre"]), spec["sum_products"])


def _ours(name: str, scale: str):
    case = CASES[name]
    control, treatment = _stats(case["control"]), _stats(case["treatment"])
    compute = cuped_effect if isinstance(control, CupedStats) else effect
    return compute(control, treatment, scale=scale, alpha=case["alpha"])


@pytest.mark.parametrize("scale", ["relative", "absolute"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_number_equals_gbstats_0_8(name, scale):
    ours, theirs = _ours(name, scale), REFERENCE["cases"][name][scale]
    pairs = {
        "estimate": (ours.estimate, theirs["estimate"]),
        "ci_low": (ours.ci_low, theirs["ci"][0]), "ci_high": (ours.ci_high, theirs["ci"][1]),
        "p_value": (ours.p_value, theirs["p_value"]), "std_error": (ours.std_error, theirs["std_error"]),
        "chance_to_win": (ours.chance_to_win, theirs["chance_to_win"]),
        "credible_low": (ours.credible_low, theirs["credible"][0]),
        "credible_high": (ours.credible_high, theirs["credible"][1]),
    }
    differences = {k: abs(a - b) for k, (a, b) in pairs.items()}
    assert max(differences.values()) < 1e-9, differences


def test_the_relative_chance_to_win_is_not_the_absolute_one():
    # The point of reporting it on GrowthBook's scale: the two differ, and users compare the relative one.
    relative, absolute = _ours("conversion_10pct_plus_10pct", "relative"), _ours("conversion_10pct_plus_10pct",
                                                                                  "absolute")
    assert relative.chance_to_win == pytest.approx(REFERENCE["cases"]["conversion_10pct_plus_10pct"]["relative"][
        "chance_to_win"], abs=1e-12)
    assert abs(relative.chance_to_win - absolute.chance_to_win) > 1e-3


MEAN_CASES = [n for n, c in sorted(CASES.items()) if c["control"]["kind"] in ("proportion", "mean")]


@pytest.mark.parametrize("name", MEAN_CASES)
def test_chance_to_win_and_relative_interval_agree_with_the_installed_gbstats(name):
    from gbstats.bayesian.main import binomial_ab_test, gaussian_ab_test

    case = CASES[name]
    control, treatment = _stats(case["control"]), _stats(case["treatment"])
    ours = effect(control, treatment, scale="relative", alpha=0.05)
    if isinstance(control, ProportionStats):
        theirs = binomial_ab_test(control.sum, control.n, treatment.sum, treatment.n)
    else:
        theirs = gaussian_ab_test(control.mean, math.sqrt(control.variance), control.n, treatment.mean,
                                  math.sqrt(treatment.variance), treatment.n)
    # Same quantities, two approximations (delta method vs log-normal): they agree to ~1% in chance
    # to win and to a fraction of the interval's width, and closer as the arms grow.
    width = ours.credible_high - ours.credible_low
    assert abs(ours.chance_to_win - float(theirs["chance_to_win"])) < 0.01
    assert abs(ours.estimate - float(theirs["expected"])) < 0.01 * width + 1e-3
    assert abs(ours.credible_low - theirs["ci"][0]) < 0.2 * width
    assert abs(ours.credible_high - theirs["ci"][1]) < 0.2 * width


def test_effects_refuse_what_gbstats_reports_as_an_error():
    zero = ProportionStats(100, 0, 0)
    with pytest.raises(ExperimentError, match="mean is 0"):
        effect(zero, ProportionStats(100, 5, 5))
    with pytest.raises(ExperimentError, match="no variance"):
        effect(MeanStats(10, 10.0, 10.0), MeanStats(10, 12.0, 20.0), scale="absolute")
    with pytest.raises(ExperimentError, match="same way"):
        effect(MeanStats(10, 10.0, 30.0), RatioStats(MeanStats(10, 1.0, 1.0), MeanStats(10, 2.0, 2.0), 1.0))

"""The experiment engine: who gets which variation, and what the experiment showed.

* ``assign`` / ``assign_many`` — deterministic, sticky, salted assignment whose buckets equal a
  GrowthBook SDK's (hash version 2), so the lake and the SDK agree on every unit's variation;
  ``in_holdout`` / ``in_holdout_many`` — the global holdout no growth loop may touch;
* ``welch``, ``relative_lift``, ``cuped``, ``chance_to_win`` — fixed-horizon analysis of one metric;
* ``sequential_test`` / ``AlwaysValidMonitor`` — the mSPRT, safe to peek at every day;
* ``srm_test`` — sample-ratio mismatch of the assignment counts;
* ``effect`` / ``cuped_effect`` on ``MeanStats`` / ``ProportionStats`` / ``RatioStats`` /
  ``CupedStats`` — relative and absolute effects, intervals and chance to win from sufficient
  statistics, as GrowthBook computes them; ``adjust_p_values`` (Holm, Benjamini–Hochberg);
  ``plan_sample_size``;
* ``sequential`` — the always-valid one-sided test of a relative drop the guardrails use;
* ``analyze`` — all of it for one metric, with ``MetricResult.to_record()`` as a results-table row.

Pure functions over strings and numpy arrays: no Dagster, no I/O.
"""

from growth_loops.experiments.assignment import (
    DEFAULT_HOLDOUT_SEED,
    DEFAULT_HOLDOUT_SHARE,
    HASH_BUCKETS,
    assign,
    assign_many,
    bucket,
    bucket_many,
    bucket_ranges,
    check_weights,
    fnv1a32,
    in_holdout,
    in_holdout_many,
)
from growth_loops.experiments.effects import (
    CupedStats,
    Effect,
    MeanStats,
    ProportionStats,
    RatioStats,
    adjust_p_values,
    cuped_effect,
    effect,
    summarize,
)
from growth_loops.experiments.errors import ExperimentError
from growth_loops.experiments.planning import SamplePlan, plan_sample_size
from growth_loops.experiments.stats import (
    DEFAULT_ALPHA,
    DEFAULT_MIXING_EFFECT_SIZE,
    SRM_THRESHOLD,
    AlwaysValidMonitor,
    CupedEstimate,
    Estimate,
    MetricResult,
    SequentialResult,
    SrmResult,
    analyze,
    chance_to_win,
    cuped,
    default_tau2,
    relative_lift,
    running_p_values,
    sequential_test,
    srm_test,
    welch,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_HOLDOUT_SEED",
    "DEFAULT_HOLDOUT_SHARE",
    "DEFAULT_MIXING_EFFECT_SIZE",
    "HASH_BUCKETS",
    "SRM_THRESHOLD",
    "AlwaysValidMonitor",
    "CupedEstimate",
    "CupedStats",
    "Effect",
    "Estimate",
    "ExperimentError",
    "MeanStats",
    "MetricResult",
    "ProportionStats",
    "RatioStats",
    "SamplePlan",
    "SequentialResult",
    "SrmResult",
    "adjust_p_values",
    "analyze",
    "assign",
    "assign_many",
    "bucket",
    "bucket_many",
    "bucket_ranges",
    "chance_to_win",
    "check_weights",
    "cuped",
    "cuped_effect",
    "default_tau2",
    "effect",
    "fnv1a32",
    "in_holdout",
    "in_holdout_many",
    "plan_sample_size",
    "relative_lift",
    "running_p_values",
    "sequential_test",
    "srm_test",
    "summarize",
    "welch",
]

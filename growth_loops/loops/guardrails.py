"""Guardrail verdicts: is a treatment hurting a metric we protect, beyond the tolerated drop?

A guardrail is re-evaluated every night on everything its loop's version has exposed so far, so
its test must stay valid under repeated looks. ``evaluate`` uses the always-valid one-sided test
of ``experiments.sequential`` on the log ratio of the arm means (a mean or a ratio metric, from
sufficient statistics): the treatment is rolled back when the always-valid upper bound of the
relative change is below ``-max_relative_drop`` — then, whatever the number of nightly looks,
the chance that a treatment within the tolerance is ever rolled back stays at most
``1 - confidence`` (``evaluate_all`` splits it over a loop's guardrails, Bonferroni).

Every verdict reports its minimum detectable effect (MDE): the relative change the test detects
with 80% power at the current sample. A guardrail that does not roll back says ``pass`` only when
that MDE is at most the tolerance — it could have seen a drop of the tolerated size; until then it
says ``insufficient_evidence``, which neither rolls back nor lets the loop gain autonomy. Too few
units per arm, or an arm whose mean is not positive, is ``insufficient_evidence`` with no
estimate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, TypedDict

import numpy as np

from growth_loops.experiments import ExperimentError, MeanStats, RatioStats, summarize
from growth_loops.experiments.sequential import log_ratio, relative_mde, upper_margin
from growth_loops.loops.errors import LoopError
from growth_loops.loops.spec import Guardrail

__all__ = ["POWER", "GuardrailVerdict", "Verdict", "evaluate", "evaluate_all"]

Verdict = Literal["pass", "rollback", "insufficient_evidence"]
POWER = 0.8
"""The power at which every verdict's minimum detectable effect is computed."""
METHOD = "msprt-log-ratio"


@dataclass(frozen=True)
class GuardrailVerdict:
    """The verdict of one guardrail, with its evidence (what the audit log records).

    Attributes:
        metric: The guarded metric (a name of the metric layer).
        verdict: ``rollback``, ``pass`` (no breach, and powered) or ``insufficient_evidence``.
        relative_impact: Estimated relative change, treatment vs control (None without an estimate).
        upper_bound: Always-valid one-sided upper bound of the relative change.
        lower_bound: Always-valid one-sided lower bound of the relative change (same level).
        threshold: ``-max_relative_drop``: a rollback needs the upper bound below it.
        confidence: ``1 - alpha`` of this guardrail's test (after the split over the loop's guardrails).
        n_control: Control units evaluated.
        n_treatment: Treatment units evaluated.
        mde: Relative change detectable with 80% power at this sample (None without an estimate).
        powered: Whether ``mde`` is at most the tolerated drop.
        method: The test (``msprt-log-ratio``).
        reason: One sentence for people.
    """

    metric: str
    verdict: Verdict
    relative_impact: float | None
    upper_bound: float | None
    lower_bound: float | None
    threshold: float
    confidence: float
    n_control: int
    n_treatment: int
    mde: float | None
    powered: bool
    method: str
    reason: str

    @property
    def rollback(self) -> bool:
        return self.verdict == "rollback"

    def evidence(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


Arm = MeanStats | RatioStats | np.ndarray | Sequence[float]


class _Common(TypedDict):
    """The fields of a verdict that do not depend on the outcome."""

    metric: str
    threshold: float
    confidence: float
    n_control: int
    n_treatment: int
    method: str


def evaluate(guardrail: Guardrail, control: Arm, treatment: Arm, *, alpha: float | None = None) -> GuardrailVerdict:
    """Judge ``treatment`` against ``control`` on the guardrail's metric.

    Args:
        guardrail: The declaration (tolerance, confidence, minimum units).
        control: The control arm: sufficient statistics, or one value per unit.
        treatment: The treatment arm, of the same kind.
        alpha: The test's miss rate; ``1 - guardrail.confidence`` when None (``evaluate_all``
            passes a share of it per guardrail).

    Returns:
        The :class:`GuardrailVerdict`.
    """
    c, t = _stats(control), _stats(treatment)
    alpha = 1 - guardrail.confidence if alpha is None else alpha
    tolerance = guardrail.max_relative_drop
    base = _Common(metric=guardrail.metric, threshold=-tolerance, confidence=1 - alpha, n_control=c.n,
                   n_treatment=t.n, method=METHOD)
    if min(c.n, t.n) < guardrail.min_units_per_arm:
        return GuardrailVerdict(verdict="insufficient_evidence", relative_impact=None, upper_bound=None,
                                lower_bound=None, mde=None, powered=False,
                                reason=f"fewer than {guardrail.min_units_per_arm} units in an arm "
                                       f"({c.n} control, {t.n} treatment)", **base)
    try:
        theta, variance = log_ratio(c, t)
        margin = upper_margin(variance, alpha=alpha)
        mde = relative_mde(variance, alpha=alpha, power=POWER)
    except ExperimentError as exc:  # a mean of 0, no variance: the relative change is undefined
        return GuardrailVerdict(verdict="insufficient_evidence", relative_impact=None, upper_bound=None,
                                lower_bound=None, mde=None, powered=False, reason=str(exc), **base)
    upper, lower = math.expm1(theta + margin), math.expm1(theta - margin)
    powered = mde <= tolerance
    if upper < -tolerance:
        verdict: Verdict = "rollback"
        why = f"below the tolerated {-tolerance:+.1%}: roll back"
    elif powered:
        verdict = "pass"
        why = f"not below the tolerated {-tolerance:+.1%}, and a drop of {mde:.1%} would have been seen"
    else:
        verdict = "insufficient_evidence"
        why = (f"not below the tolerated {-tolerance:+.1%}, but only a drop of {mde:.1%} or more would be seen "
               f"yet (the tolerance is {tolerance:.1%}): more units needed")
    reason = (f"{guardrail.metric} {math.expm1(theta):+.1%} (always-valid {1 - alpha:.1%} upper bound "
              f"{upper:+.1%}) {why}")
    return GuardrailVerdict(verdict=verdict, relative_impact=math.expm1(theta), upper_bound=upper, lower_bound=lower,
                            mde=mde, powered=powered, reason=reason, **base)


def evaluate_all(guardrails: Sequence[Guardrail], arms: Mapping[str, tuple[Arm, Arm]]) -> list[GuardrailVerdict]:
    """Every guardrail of a loop, each at its share of the loop's miss rate (Bonferroni).

    A loop with ``k`` guardrails tests each at ``(1 - confidence) / k``, so the chance that a
    treatment within every tolerance is rolled back by *any* of them stays at most
    ``1 - confidence``.

    Args:
        guardrails: The loop's declarations.
        arms: ``(control, treatment)`` per guardrail metric.

    Raises:
        LoopError: when a guardrail's metric has no arms.
    """
    out = []
    for guardrail in guardrails:
        if guardrail.metric not in arms:
            raise LoopError(f"guardrail on {guardrail.metric!r}", "no data was given for its metric",
                            "Compute the metric's arms before evaluating.")
        control, treatment = arms[guardrail.metric]
        out.append(evaluate(guardrail, control, treatment, alpha=(1 - guardrail.confidence) / len(guardrails)))
    return out


def _stats(arm: Arm) -> MeanStats | RatioStats:
    if isinstance(arm, (MeanStats, RatioStats)):
        return arm
    values = np.asarray(arm, dtype=float)
    return summarize(values) if values.size else MeanStats(0, 0.0, 0.0)

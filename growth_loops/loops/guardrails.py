"""Guardrail verdicts: is a treatment hurting a metric we protect, beyond the tolerated drop?

``evaluate`` compares per-unit values of a guardrail metric between control and treatment units
exposed in the guardrail's window. The relative impact and its delta-method interval come from
``experiments.stats.relative_lift``; with confidence ``c``, the one-sided upper bound is the upper
end of the two-sided interval at ``alpha = 2 (1 - c)``. The treatment is rolled back when that upper
bound is below ``-max_relative_drop``: we are ``c`` confident the metric dropped by more than we
tolerate. Too few units per arm, or a control mean of 0, gives ``insufficient`` (no rollback and
no promotion either).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal, TypedDict

import numpy as np

from growth_loops.experiments import ExperimentError, relative_lift
from growth_loops.loops.spec import Guardrail

__all__ = ["GuardrailVerdict", "evaluate"]

Verdict = Literal["pass", "rollback", "insufficient"]


@dataclass(frozen=True)
class GuardrailVerdict:
    """The verdict of one guardrail, with its evidence (what the audit log records)."""

    metric: str
    verdict: Verdict
    relative_impact: float | None
    upper_bound: float | None
    lower_bound: float | None
    threshold: float
    confidence: float
    n_control: int
    n_treatment: int
    reason: str

    @property
    def rollback(self) -> bool:
        return self.verdict == "rollback"

    def evidence(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class _Common(TypedDict):
    """The fields of a verdict that do not depend on the outcome."""

    metric: str
    threshold: float
    confidence: float
    n_control: int
    n_treatment: int


def evaluate(guardrail: Guardrail, control: np.ndarray, treatment: np.ndarray) -> GuardrailVerdict:
    """Judge ``treatment`` against ``control`` on the guardrail's metric (one value per exposed unit)."""
    control, treatment = np.asarray(control, dtype=float), np.asarray(treatment, dtype=float)
    base = _Common(metric=guardrail.metric, threshold=-guardrail.max_relative_drop, confidence=guardrail.confidence,
                   n_control=int(control.size), n_treatment=int(treatment.size))
    if min(control.size, treatment.size) < guardrail.min_units_per_arm:
        return GuardrailVerdict(verdict="insufficient", relative_impact=None, upper_bound=None, lower_bound=None,
                                reason=f"fewer than {guardrail.min_units_per_arm} units in an arm", **base)
    try:
        est = relative_lift(control, treatment, alpha=2 * (1 - guardrail.confidence))
    except ExperimentError as exc:  # e.g. a control mean of 0: the relative impact is undefined
        return GuardrailVerdict(verdict="insufficient", relative_impact=None, upper_bound=None, lower_bound=None,
                                reason=str(exc), **base)
    rollback = est.ci_high < -guardrail.max_relative_drop
    reason = (f"{guardrail.metric} {est.estimate:+.1%} (one-sided {guardrail.confidence:.0%} upper bound "
              f"{est.ci_high:+.1%}) {'below' if rollback else 'not below'} the tolerated "
              f"{-guardrail.max_relative_drop:+.1%}")
    return GuardrailVerdict(verdict="rollback" if rollback else "pass", relative_impact=est.estimate,
                            upper_bound=est.ci_high, lower_bound=est.ci_low, reason=reason, **base)

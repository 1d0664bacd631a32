"""A growth loop declared in one place: what it reads, how it decides, what it changes, how it is
measured, what stops it, and who must agree before it acts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from growth_loops.loops.errors import LoopError

__all__ = ["ApprovalPolicy", "Budget", "Guardrail", "LoopSpec"]

PolicyKind = Literal["rule", "scored_model", "bandit", "contextual_bandit", "experiment"]
ActuationKind = Literal["feature_flag", "message", "in_app_variant"]
_POLICIES = ("rule", "scored_model", "bandit", "contextual_bandit", "experiment")
_ACTUATIONS = ("feature_flag", "message", "in_app_variant")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}\Z")


@dataclass(frozen=True, kw_only=True)
class Guardrail:
    """A metric that must not get worse: roll back when we are confident it did.

    Declared as data in the loop's spec and evaluated by the loop runtime on every unit the
    version exposed so far (``loops.guardrails``): the treatment is rolled back when the
    always-valid upper bound of the relative change of ``metric`` (treatment vs control) is
    below ``-max_relative_drop``. ``max_relative_drop`` is a setting, not 0: a guardrail that
    fires on any dip fires on noise.

    Attributes:
        metric: A unit metric of the metric layer (``growth_loops.metrics``), e.g.
            ``revenue_per_active_user`` or ``retention_d7``.
        max_relative_drop: Tolerated relative drop, e.g. 0.02 for -2%.
        window_days: Days after each unit's start its metric is measured over; None for the
            metric's own window. A unit counts once its window has closed.
        confidence: ``1 - alpha`` of the loop's guardrails together (each gets a share), e.g. 0.95.
        min_units_per_arm: Below this many units per arm the verdict is "insufficient evidence".
    """

    metric: str
    max_relative_drop: float
    window_days: int | None = None
    confidence: float = 0.95
    min_units_per_arm: int = 100

    def __post_init__(self) -> None:
        subject = f"guardrail on {self.metric!r}"
        if not self.metric:
            raise LoopError("guardrail", "metric is empty", "Name the metric of the metric layer it watches.")
        if not 0 < self.max_relative_drop < 1:
            raise LoopError(subject, f"max_relative_drop {self.max_relative_drop!r} is not in (0, 1)",
                            "Give the tolerated relative drop as a share, e.g. 0.02 for -2%.")
        if self.window_days is not None and self.window_days < 1:
            raise LoopError(subject, f"window_days {self.window_days!r} < 1",
                            "Use a window of at least one day (or None for the metric's own).")
        if not 0.5 < self.confidence < 1:
            raise LoopError(subject, f"confidence {self.confidence!r} is not in (0.5, 1)", "Use e.g. 0.95.")
        if self.min_units_per_arm < 2:
            raise LoopError(subject, "min_units_per_arm must be at least 2", "Use e.g. 100.")


@dataclass(frozen=True, kw_only=True)
class ApprovalPolicy:
    """Who lets a new policy version act.

    ``mode="human"``: nothing is actuated until a person approves the version
    (``growthlake approvals approve <loop> <version>``). ``mode="auto"``: a version starts as a
    canary (``LoopSettings.canary_share`` of its units) and approves itself once every guardrail
    said ``pass`` — no breach, and powered — on ``stable_days`` consecutive canary days; a person
    may approve it earlier. The state machine is ``loops.lifecycle``.
    """

    mode: Literal["human", "auto"] = "human"
    stable_days: int = 3

    def __post_init__(self) -> None:
        if self.mode not in ("human", "auto"):
            raise LoopError("approval policy", f"mode {self.mode!r} is unknown", "Use 'human' or 'auto'.")
        if self.stable_days < 1:
            raise LoopError("approval policy", "stable_days must be at least 1", "Use e.g. 3.")


@dataclass(frozen=True, kw_only=True)
class Budget:
    """How often a day a loop may take a costly action (e.g. send a discount).

    Attributes:
        action: The variant that costs (e.g. ``retention_offer``).
        max_per_day: At most this many units get it per decision day; beyond, the same share of
            every arm is kept (``loops.caps``) and the binding is audited.
    """

    action: str
    max_per_day: int

    def __post_init__(self) -> None:
        if not self.action or self.max_per_day < 1:
            raise LoopError("budget", f"{self.action!r} at most {self.max_per_day!r} a day",
                            "Name the costly variant and allow at least one a day.")


@dataclass(frozen=True, kw_only=True)
class LoopSpec:
    """One growth loop.

    Attributes:
        name: Identifier (lower snake case); used in asset keys ``["loops", name, "decisions"]``.
        description: What the loop is for.
        owner: Team answerable for it.
        inputs: Features read, as ``"<view>.<feature>"``.
        policy: How it decides: a rule, a scored model, a bandit, a contextual bandit, or a
            randomized experiment.
        actuation: What it changes: a feature flag, a message, or an in-app variant.
        target: The flag key or message template actuated.
        variants: The actions; ``control`` is the one applied on rollback and to the holdout.
        control: The control action.
        feedback_metric: The per-unit metric the loop optimizes; it must feed the OEC.
        guardrails: Metrics of the metric layer that trigger a rollback, evaluated by the runtime
            on every unit the version exposed (data, not code). Without one, an auto loop never
            leaves its canary.
        approval: Who lets a new policy version act.
        cadence: ``nightly`` or ``hourly`` decision runs.
        budget: At most this many costly actions a day (None: no budget).
    """

    name: str
    description: str
    owner: str
    inputs: tuple[str, ...]
    policy: PolicyKind
    actuation: ActuationKind
    target: str
    variants: tuple[str, ...]
    control: str
    feedback_metric: str
    guardrails: tuple[Guardrail, ...] = ()
    approval: ApprovalPolicy = ApprovalPolicy()
    cadence: Literal["nightly", "hourly"] = "nightly"
    budget: Budget | None = None

    def __post_init__(self) -> None:
        subject = f"loop {self.name!r}"
        if not _NAME.match(self.name or ""):
            raise LoopError(subject, "the name is not lower snake case (a-z, 0-9, _; at most 63 characters)",
                            "Rename it; it becomes part of table paths and asset keys.")
        if self.policy not in _POLICIES:
            raise LoopError(subject, f"policy {self.policy!r} is unknown", f"Use one of {', '.join(_POLICIES)}.")
        if self.actuation not in _ACTUATIONS:
            raise LoopError(subject, f"actuation {self.actuation!r} is unknown",
                            f"Use one of {', '.join(_ACTUATIONS)}.")
        for field_name in ("inputs", "variants", "guardrails"):
            if not isinstance(getattr(self, field_name), tuple):
                raise LoopError(subject, f"{field_name} is not a tuple", "Pass a tuple so the spec stays immutable.")
        if len(self.variants) < 2 or len(set(self.variants)) != len(self.variants):
            raise LoopError(subject, f"variants {self.variants!r} must be at least two distinct actions",
                            "List the control and every treatment once.")
        if self.control not in self.variants:
            raise LoopError(subject, f"control {self.control!r} is not one of the variants",
                            "Name the variant applied on rollback and to the global holdout.")
        bad = [i for i in self.inputs if i.count(".") != 1]
        if bad:
            raise LoopError(subject, f"inputs {bad} are not '<view>.<feature>'", "Name each input by view and feature.")
        if not self.target or not self.owner or not self.feedback_metric:
            raise LoopError(subject, "target, owner and feedback_metric are required", "Fill them in.")
        if self.cadence not in ("nightly", "hourly"):
            raise LoopError(subject, f"cadence {self.cadence!r} is unknown", "Use 'nightly' or 'hourly'.")
        if self.budget is not None and self.budget.action not in self.treatments:
            raise LoopError(subject, f"the budget's action {self.budget.action!r} is not a treatment",
                            f"Budget one of {', '.join(self.treatments)}.")
        metrics = [g.metric for g in self.guardrails]
        if len(set(metrics)) != len(metrics):
            raise LoopError(subject, f"guardrail metrics repeat: {metrics}", "Declare each metric once.")

    @property
    def treatments(self) -> tuple[str, ...]:
        return tuple(v for v in self.variants if v != self.control)

    @property
    def views(self) -> tuple[str, ...]:
        """Feature views the loop reads (its decisions depend on their gates)."""
        return tuple(sorted({i.split(".")[0] for i in self.inputs}))

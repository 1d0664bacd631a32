"""Feature flags: publish loop decisions as a GrowthBook SDK "features" document.

A product that evaluates flags with the real ``growthbook`` SDK (any language; the Python one is
tested) and loads this document gets exactly the variant the loop decided. One decision per flag,
of one of three kinds:

* :class:`UnitAssignments` — a variant per unit (e.g. a contextual bandit's choices). Each distinct
  variant becomes one force rule conditioned on the ``id`` attribute,
  ``{"condition": {"id": {"$in": [sorted ids]}}, "force": value}``; unknown units get the default.
* :class:`HashExperiment` — a randomized experiment the SDK buckets itself: one experiment rule
  with ``key``, ``seed``, ``hashVersion: 2``, ``hashAttribute``, ``variations``, ``weights``,
  ``coverage`` and ``meta``. Units outside the coverage get the default.
* :class:`Rollback` — the control value for everyone: ``defaultValue`` and an unconditional
  force rule, so no older rule can survive in a cached copy of the flag.

The document is ``{"features": {flag: {"defaultValue": ..., "rules": [...]}}}`` — the ``features``
section of the payload GrowthBook's API serves (``GrowthBook(features=doc["features"])`` or
``gb.set_payload(doc)``). It is deterministic: flags sorted by key, rules in a fixed order, ids
sorted, so building the same decisions twice gives byte-identical canonical JSON and the same
:func:`document_hash`.

Evaluation cost on the product side: the SDK checks ``$in`` by scanning the list, so a flag with
hundreds of thousands of assigned ids costs a scan per evaluation; very large per-unit decisions
are better served by a hash experiment or a lookup in the product's own store.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lake.errors import GrowthlakeError

__all__ = [
    "ActuationError",
    "FlagDecision",
    "HashExperiment",
    "Rollback",
    "UnitAssignments",
    "build_features_document",
    "canonical_json",
    "document_hash",
]

JsonValue = Any  # a JSON-serializable value: str, int, float, bool, list, dict (never null)

_FLAG_KEY = re.compile(r"[A-Za-z0-9_.:|-]+\Z")  # the characters GrowthBook allows in a feature key
_WEIGHT_TOLERANCE = 1e-6  # well inside the SDK's [0.99, 1.01]: weights are used exactly as given


class ActuationError(GrowthlakeError, ValueError):
    """A decision cannot be actuated as given (malformed flag, message or outbox document).

    It is also a ``ValueError`` so that callers treating bad arguments generically still catch it.
    It lives here, not in ``lake/errors.py``, only because the actuation package was built in one
    piece; move it with the other errors when convenient.
    """

    def __init__(self, subject: str, problem: str, fix: str) -> None:
        self.subject = subject
        super().__init__(f"{subject}: {problem}. {fix}")


def canonical_json(value: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, no NaN/Infinity, UTF-8 characters kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def document_hash(doc: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of ``doc``: equal for equal content, whatever the key order."""
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def _json_value(value: Any, subject: str, what: str) -> str:
    if value is None:
        raise ActuationError(subject, f"{what} is null",
                             "Use a non-null JSON value: the SDK treats null as 'flag off' and returns the fallback.")
    try:
        return canonical_json(value)
    except (TypeError, ValueError) as exc:
        raise ActuationError(subject, f"{what} {value!r} is not a JSON value ({exc})",
                             "Use str, int, float (finite), bool, or lists/dicts of those.") from None


def _short(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True, kw_only=True)
class FlagDecision:
    """What a loop decided for one feature flag (use a subclass).

    Attributes:
        key: The GrowthBook feature key the product evaluates, e.g. ``onboarding_variant``.
        default: The value for every unit no rule applies to (the control, usually).
        decision_id: The loop decision this actuates; prefixes the rule ids, which the SDK
            reports as ``FeatureResult.ruleId`` (for exposure logging). Optional.
        holdout_share: Share of units in the global holdout, which always get ``default``
            (0: none). The first rule forces ``default`` on the hash range ``[0, share)`` of
            ``holdout_seed`` (hash version 2), the same units
            ``growth_loops.experiments.in_holdout`` names, so no loop touches them.
        holdout_seed: Seed of the global holdout's hash.
    """

    key: str
    default: JsonValue
    decision_id: str = ""
    holdout_share: float = 0.0
    holdout_seed: str = "global-holdout"

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if type(self) is FlagDecision:
            raise ActuationError("flag decision", "FlagDecision itself was instantiated",
                                 "Use UnitAssignments, HashExperiment or Rollback.")
        if not isinstance(self.key, str) or not _FLAG_KEY.match(self.key):
            raise ActuationError(f"flag {self.key!r}", "the key is empty or has characters GrowthBook rejects",
                                 "Use letters, digits and _ . : | - only.")
        _json_value(self.default, self.subject, "the default value")
        if not isinstance(self.holdout_share, (int, float)) or not 0 <= self.holdout_share < 1:
            raise ActuationError(self.subject, f"holdout_share {self.holdout_share!r} is not in [0, 1)",
                                 "Give the global holdout's share, e.g. 0.05, or 0 for none.")

    @property
    def subject(self) -> str:
        return f"flag {self.key!r} ({self.kind})"

    def _rule_id(self, suffix: str) -> str:
        return f"{self.decision_id or self.key}:{suffix}"

    def rules(self) -> list[dict[str, Any]]:
        """The GrowthBook rules of this decision, in evaluation order."""
        raise NotImplementedError

    def to_feature(self) -> dict[str, Any]:
        """The flag's entry in the ``features`` document."""
        holdout = []
        if self.holdout_share > 0:
            holdout = [{"id": self._rule_id("global-holdout"), "force": self.default, "hashAttribute": "id",
                        "seed": self.holdout_seed, "hashVersion": 2, "range": [0.0, float(self.holdout_share)]}]
        return {"defaultValue": self.default, "rules": holdout + self.rules()}


@dataclass(frozen=True, kw_only=True)
class UnitAssignments(FlagDecision):
    """A variant per unit id, e.g. chosen by a contextual bandit.

    Attributes:
        assignments: Unit id (the SDK's ``id`` attribute; a non-empty string) → variant value.
            Ids absent from it get ``default``.
    """

    assignments: Mapping[str, JsonValue] = field(default_factory=dict)

    kind: ClassVar[str] = "unit assignments"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._grouped()  # validate eagerly; the result is cheap to recompute and not cached on a frozen object

    def _grouped(self) -> list[tuple[str, JsonValue, list[str]]]:
        """(canonical JSON, value, sorted ids) per distinct variant, ordered by canonical JSON."""
        seen: dict[Any, str] = {}  # hashable value -> canonical JSON, so 200k ids serialize a few values
        groups: dict[str, tuple[JsonValue, list[str]]] = {}
        for uid, value in self.assignments.items():
            if type(uid) is not str or not uid:
                raise ActuationError(self.subject, f"unit id {uid!r} is not a non-empty string",
                                     "Pass ids as the strings the product sets as the SDK's `id` attribute.")
            try:
                canon = seen.get((type(value), value))
                if canon is None:
                    canon = seen[(type(value), value)] = _json_value(value, self.subject, f"the value for {uid!r}")
            except TypeError:  # unhashable (list/dict) variant
                canon = _json_value(value, self.subject, f"the value for {uid!r}")
            group = groups.get(canon)
            if group is None:
                groups[canon] = (value, [uid])
            else:
                group[1].append(uid)
        return [(canon, value, sorted(ids)) for canon, (value, ids) in sorted(groups.items())]

    def rules(self) -> list[dict[str, Any]]:
        return [{"id": self._rule_id(f"unit:{_short(canon)}"), "condition": {"id": {"$in": ids}}, "force": value}
                for canon, value, ids in self._grouped()]


@dataclass(frozen=True, kw_only=True)
class HashExperiment(FlagDecision):
    """A randomized experiment the SDK assigns by hashing the unit id (GrowthBook hash v2).

    Attributes:
        experiment_key: The experiment's key, reported to the SDK's tracking callback.
        variations: The variant values, control first.
        weights: Traffic share per variation (sum 1); equal when omitted.
        coverage: Share of units included (0..1); the others get ``default`` and are not exposed.
        seed: Hash seed; the experiment key when omitted. Changing it reshuffles everyone.
        variation_names: Human names, reported in the exposure's ``meta``.
        name: The experiment's human name; the experiment key when omitted.
        hash_attribute: The SDK attribute hashed (``id``).
    """

    experiment_key: str
    variations: Sequence[JsonValue]
    weights: Sequence[float] | None = None
    coverage: float = 1.0
    seed: str | None = None
    variation_names: Sequence[str] | None = None
    name: str | None = None
    hash_attribute: str = "id"
    condition: Mapping[str, Any] | None = None

    kind: ClassVar[str] = "hash experiment"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.experiment_key or not isinstance(self.experiment_key, str):
            raise ActuationError(self.subject, "the experiment key is empty", "Name the experiment.")
        if isinstance(self.variations, (str, bytes)) or len(self.variations) < 2:
            raise ActuationError(self.subject, f"{len(self.variations)} variation(s) given",
                                 "An experiment needs at least two variations (control first); "
                                 "to give everyone one value use Rollback or UnitAssignments.")
        for i, v in enumerate(self.variations):
            _json_value(v, self.subject, f"variation {i}")
        n = len(self.variations)
        if self.weights is not None:
            ws = list(self.weights)
            if len(ws) != n:
                raise ActuationError(self.subject, f"{len(ws)} weights for {n} variations",
                                     "Give one weight per variation.")
            if any(isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0
                   for w in ws):
                raise ActuationError(self.subject, f"weights {ws} are not finite non-negative numbers",
                                     "Use shares between 0 and 1.")
            if abs(sum(ws) - 1.0) > _WEIGHT_TOLERANCE:
                raise ActuationError(self.subject, f"weights {ws} sum to {sum(ws)}",
                                     "Make them sum to 1 (the SDK would silently fall back to equal weights).")
        if (isinstance(self.coverage, bool) or not isinstance(self.coverage, (int, float))
                or not 0.0 <= self.coverage <= 1.0):
            raise ActuationError(self.subject, f"coverage {self.coverage!r} is outside [0, 1]",
                                 "Give the share of units to include, 0..1.")
        if self.variation_names is not None and len(self.variation_names) != n:
            raise ActuationError(self.subject, f"{len(self.variation_names)} names for {n} variations",
                                 "Name every variation, or none.")
        if self.seed is not None and not self.seed:
            raise ActuationError(self.subject, "the seed is empty", "Omit it (the key is used) or give one.")
        if not self.hash_attribute:
            raise ActuationError(self.subject, "the hash attribute is empty", "Use `id`.")
        if self.condition is not None:
            if not isinstance(self.condition, Mapping) or not self.condition:
                raise ActuationError(self.subject, f"condition {self.condition!r} is not a non-empty mapping",
                                     "Give attribute conditions, e.g. {'deviceType': 'mobile'}.")
            _json_value(dict(self.condition), self.subject, "the condition")

    @property
    def effective_weights(self) -> list[float]:
        n = len(self.variations)
        return [float(w) for w in self.weights] if self.weights is not None else [1.0 / n] * n

    @property
    def effective_seed(self) -> str:
        return self.seed or self.experiment_key

    def rules(self) -> list[dict[str, Any]]:
        names = self.variation_names
        meta = [{"key": str(i), **({"name": names[i]} if names is not None else {})}
                for i in range(len(self.variations))]
        return [{
            "id": self._rule_id(f"experiment:{self.experiment_key}"),
            "key": self.experiment_key,
            "name": self.name or self.experiment_key,
            "seed": self.effective_seed,
            "hashVersion": 2,
            "hashAttribute": self.hash_attribute,
            "variations": list(self.variations),
            "weights": self.effective_weights,
            "coverage": float(self.coverage),
            "meta": meta,
            **({"condition": dict(self.condition)} if self.condition is not None else {}),
        }]


@dataclass(frozen=True, kw_only=True)
class SegmentedExperiment(FlagDecision):
    """One experiment rule per context segment (each with its ``condition``), e.g. the arm weights
    a contextual bandit chose for each device type; units of no segment get ``default``.

    Attributes:
        segments: Hash experiments of this flag, each with a ``condition``, in evaluation order.
    """

    segments: Sequence[HashExperiment]

    kind: ClassVar[str] = "segmented experiment"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.segments:
            raise ActuationError(self.subject, "no segments", "Give one HashExperiment per segment.")
        for part in self.segments:
            if not isinstance(part, HashExperiment) or part.key != self.key or part.condition is None:
                raise ActuationError(self.subject, f"segment {part!r} is not a conditioned experiment of this flag",
                                     "Give HashExperiment(key=<this flag>, condition={...}, ...) per segment.")

    def rules(self) -> list[dict[str, Any]]:
        return [rule for part in self.segments for rule in part.rules()]


@dataclass(frozen=True, kw_only=True)
class Rollback(FlagDecision):
    """Force the control value (``default``) for everyone: a guardrail breach, a stopped loop.

    Attributes:
        reason: Why, for the audit trail (not part of the document).
    """

    reason: str = ""

    kind: ClassVar[str] = "rollback"

    def rules(self) -> list[dict[str, Any]]:
        return [{"id": self._rule_id("rollback"), "force": self.default}]


def build_features_document(flags: Sequence[FlagDecision]) -> dict[str, Any]:
    """The GrowthBook SDK document actuating ``flags``: ``{"features": {key: {defaultValue, rules}}}``.

    Args:
        flags: One decision per flag key.

    Raises:
        ActuationError: Two decisions for one key, or something that is not a decision.
    """
    features: dict[str, Any] = {}
    for flag in sorted(flags, key=lambda f: getattr(f, "key", "")):
        if not isinstance(flag, FlagDecision):
            raise ActuationError("features document", f"{flag!r} is not a flag decision",
                                 "Pass UnitAssignments, HashExperiment or Rollback objects.")
        if flag.key in features:
            raise ActuationError(flag.subject, "the flag has more than one decision",
                                 "Give each flag exactly one decision per document.")
        features[flag.key] = flag.to_feature()
    return {"features": features}

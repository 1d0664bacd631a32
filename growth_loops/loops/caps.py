"""Caps on automated actions, enforced before anything is actuated.

* **Frequency cap** (``LoopSettings.messages_per_person_per_week``): a person who already got that
  many messages from the loops in the last 7 days gets no new one. The check does not look at the
  arm a unit was randomized to — the whole unit leaves the experiment, control or treatment — so
  the cap cannot bias an experiment's estimate.
* **Budget cap** (``LoopSpec.budget``): a loop may take its costly action (a discount) at most
  ``max_per_day`` times a day. When it wants more, the same share of its units is kept in every
  arm — the units with the lowest hash of (loop, person), an order unrelated to their outcomes —
  so the experiment stays balanced.

Dropped units are kept in the decisions, marked not actuated with the cap that bound; every cap
that binds is reported (the runtime writes one audit record per binding).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from growth_loops.actuation import OutboxMessage
from growth_loops.loops.spec import Budget

__all__ = ["CapResult", "apply_caps"]


@dataclass(frozen=True)
class CapResult:
    """The decisions and messages left after the caps, and the caps that bound.

    Attributes:
        decisions: Every decision, those dropped with ``actuated: False`` and ``cap`` set.
        messages: The messages still to send.
        bindings: One dict per cap that bound: ``cap``, ``limit``, ``wanted``, ``kept``, ``dropped``.
        counts: Messages per person in the last 7 days, including the ones kept here.
    """

    decisions: list[dict[str, Any]]
    messages: list[OutboxMessage]
    bindings: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def _rank(loop: str, person: str) -> str:
    return hashlib.sha256(f"{loop}|{person}".encode()).hexdigest()


def apply_caps(decisions: Sequence[Mapping[str, Any]], messages: Sequence[OutboxMessage], *, loop: str,
               messages_last_week: Mapping[str, int], per_person_per_week: int | None,
               budget: Budget | None) -> CapResult:
    """Apply the frequency and budget caps to one loop's decisions of a day.

    Args:
        decisions: The loop's decisions (``person_id`` None for loop-level ones, which no cap touches).
        messages: The messages those decisions send.
        loop: The loop's name.
        messages_last_week: Messages per person queued or sent in the last 7 days (all loops,
            including earlier loops of this run).
        per_person_per_week: The frequency cap, or None for none (applies when the loop sends messages).
        budget: The loop's budget, or None.

    Returns:
        A :class:`CapResult`.
    """
    out = [dict(d) for d in decisions]
    counts = dict(messages_last_week)
    bindings: list[dict[str, Any]] = []
    units = [d for d in out if d.get("person_id") is not None and d.get("actuated", True)]
    if per_person_per_week is not None and messages:
        capped = [d for d in units if counts.get(d["person_id"], 0) >= per_person_per_week]
        for d in capped:
            d["actuated"], d["cap"] = False, "frequency"
        if capped:
            bindings.append({"cap": "frequency", "limit": per_person_per_week, "per": "person and 7 days",
                             "wanted": len(units), "kept": len(units) - len(capped), "dropped": len(capped)})
        units = [d for d in units if d.get("actuated", True)]
    if budget is not None:
        costly = [d for d in units if d["action"] == budget.action]
        if len(costly) > budget.max_per_day:
            share = budget.max_per_day / len(costly)
            kept: set[str] = set()
            for action in sorted({d["action"] for d in units}):  # the same share of every arm
                arm = sorted((d for d in units if d["action"] == action), key=lambda d: _rank(loop, d["person_id"]))
                keep = budget.max_per_day if action == budget.action else int(len(arm) * share)
                kept.update(d["person_id"] for d in arm[:keep])
            dropped = [d for d in units if d["person_id"] not in kept]
            for d in dropped:
                d["actuated"], d["cap"] = False, "budget"
            bindings.append({"cap": "budget", "action": budget.action, "limit": budget.max_per_day, "per": "day",
                             "wanted": len(costly), "kept": budget.max_per_day, "dropped": len(dropped)})
    allowed = {d["person_id"] for d in out if d.get("person_id") is not None and d.get("actuated", True)}
    sent = [m for m in messages if m.person_id in allowed]
    for m in sent:
        counts[m.person_id] = counts.get(m.person_id, 0) + 1
    return CapResult(decisions=out, messages=sent, bindings=bindings, counts=counts)

"""The one state machine of a loop: approval, autonomy, rollback and the kill switch.

A policy **version** of a loop moves through these states (``None``: never seen)::

    None ──requested──────▶ pending ──approved──────────────────▶ approved
    None ──canary_started─▶ canary  ──approved / auto_approved──▶ approved
    pending, canary ──rejected──▶ rejected            (final)
    pending, canary, approved ──rolled_back──▶ rolled_back   (final: a guardrail breach)

``requested`` is how a version of a ``human`` loop starts (it actuates control until a person
approves it); ``canary_started`` how a version of an ``auto`` loop starts (it acts on the canary
share only). ``auto_approved`` is the loop approving itself, allowed only with evidence: its
guardrails said ``pass`` — no breach, *and powered* — on each of the last ``stable_days`` canary
days (:func:`stable_streak`); a loop without guardrails never has that evidence, so it never
leaves canary on its own. A verdict is final: an approved version is not rejected (stop it), a
rejected or rolled-back one comes back only as a new version.

Independently, a **loop** is ``running`` or ``stopped`` (the kill switch, ``growthlake loops stop``
/ ``resume``): a stopped loop actuates control for everyone and sends nothing, whatever its
version's state, until it is resumed.

:func:`transition` is pure (table-tested); ``loops.approvals`` stores the events and folds them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from growth_loops.loops.errors import LoopError

__all__ = ["EVENTS", "LOOP_EVENTS", "Event", "Lifecycle", "Mode", "VersionState", "fold", "stable_streak",
           "transition"]

VersionState = Literal["pending", "canary", "approved", "rejected", "rolled_back"]
Mode = Literal["control", "canary", "full", "stopped"]
EVENTS = ("requested", "canary_started", "approved", "auto_approved", "rejected", "rolled_back")
LOOP_EVENTS = ("stopped", "resumed")
_FINAL = ("rejected", "rolled_back")


@dataclass(frozen=True)
class Event:
    """Something that happened to a version (or, for ``stopped`` / ``resumed``, to the loop).

    Attributes:
        kind: One of :data:`EVENTS` or :data:`LOOP_EVENTS`.
        stable_days: For ``auto_approved``: consecutive powered, passing canary days observed.
        required_days: For ``auto_approved``: the loop's ``stable_days``.
    """

    kind: str
    stable_days: int = 0
    required_days: int = 0


@dataclass(frozen=True)
class Lifecycle:
    """Where a loop's version stands.

    Attributes:
        loop: The loop.
        version: The policy version.
        state: The version's state, None before its first event.
        stopped: Whether the loop's kill switch is on.
    """

    loop: str
    version: str
    state: VersionState | None = None
    stopped: bool = False

    @property
    def mode(self) -> Mode:
        """What the loop actuates: ``stopped`` (control, nothing sent), ``control``, ``canary`` or ``full``."""
        if self.stopped:
            return "stopped"
        return {"canary": "canary", "approved": "full"}.get(self.state or "", "control")  # type: ignore[return-value]


def transition(current: Lifecycle, event: Event) -> Lifecycle:
    """The lifecycle after ``event``, or a :class:`LoopError` saying why it cannot happen.

    Raises:
        LoopError: for an event the current state does not allow (see the module docstring).
    """
    subject = f"{current.loop} {current.version}"
    kind, state = event.kind, current.state
    if kind == "stopped":
        if current.stopped:
            raise LoopError(current.loop, "it is already stopped",
                            f"Resume it with `growthlake loops resume {current.loop}`.")
        return replace(current, stopped=True)
    if kind == "resumed":
        if not current.stopped:
            raise LoopError(current.loop, "it is not stopped", "Nothing to resume.")
        return replace(current, stopped=False)
    if kind not in EVENTS:
        raise LoopError(subject, f"event {kind!r} is unknown", f"Use one of {', '.join(EVENTS + LOOP_EVENTS)}.")
    if state in _FINAL:
        raise LoopError(subject, f"it is already {state.replace('_', ' ')}",
                        "A verdict is final; a changed policy comes back as a new version.")
    if kind in ("requested", "canary_started"):
        if state is not None:
            raise LoopError(subject, f"it is already {state}", "A version is requested once.")
        return replace(current, state="pending" if kind == "requested" else "canary")
    if state is None:
        raise LoopError(subject, "no approval was requested for this version",
                        "List pending versions with `growthlake approvals list`.")
    if kind == "rolled_back":
        return replace(current, state="rolled_back")
    if state == "approved":
        raise LoopError(subject, "it is already approved", "A verdict is final; to stop it acting now: "
                        f"`growthlake loops stop {current.loop} --reason …`.")
    if kind == "rejected":
        return replace(current, state="rejected")
    if kind == "auto_approved":
        if state != "canary":
            raise LoopError(subject, "it waits for a person (approval mode human)",
                            "Only a canary version of an auto loop approves itself.")
        if event.required_days < 1 or event.stable_days < event.required_days:
            raise LoopError(subject, f"only {event.stable_days} of {event.required_days} stable canary days with "
                            "powered, passing guardrails", "It stays a canary until its guardrails say pass.")
    return replace(current, state="approved")


def fold(loop: str, version: str, events: Iterable[Event]) -> Lifecycle:
    """Replay stored events (oldest first); an event the machine refuses is skipped, not fatal."""
    current = Lifecycle(loop, version)
    for event in events:
        try:
            current = transition(current, event)
        except LoopError:
            continue  # written by an older version of the code: the recorded state stands
    return current


def stable_streak(days: Sequence[Sequence[dict[str, Any]] | str]) -> int:
    """Consecutive most recent days whose guardrail verdicts were all ``pass`` (none: not stable).

    Args:
        days: Per canary day, oldest first, the guardrail verdicts (as the evidence dicts of
            ``GuardrailVerdict``, or their JSON list). A ``pass`` verdict is powered by definition.
    """
    streak = 0
    for verdicts in reversed(days):
        parsed = json.loads(verdicts) if isinstance(verdicts, str) else verdicts
        if not parsed or any(v.get("verdict") != "pass" for v in parsed):
            break
        streak += 1
    return streak

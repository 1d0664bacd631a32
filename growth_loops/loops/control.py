"""The kill switch: stop a live loop at once, and resume it.

``stop`` — whatever the state of the loop's version (pending, canary, approved) — in one step, under
the loops' lock (a nightly decision run waits for it):

* rewrites the loop's flag in the published GrowthBook features document to control for every
  unit (``Rollback``: the default value and an unconditional force rule), so every SDK that loads
  the document serves control;
* withholds the loop's pending messages (outbox status ``withheld``: the sender never reads them);
* records ``stopped`` in the lifecycle (with the flag entry it replaced and the messages it
  withheld) and in the audit log.

Until it is resumed, every nightly run of the loop actuates control and sends nothing. ``resume``
reverses it: it records ``resumed``, puts the flag entry saved by the stop back (unless a newer
decision replaced it meanwhile) and releases the withheld messages; the next nightly run decides
as usual.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass

from growth_loops.actuation import (
    Rollback,
    features_document_path,
    load_features_document,
    publish_features_document,
    release,
    withhold,
)
from growth_loops.actuation.flags import ActuationError, canonical_json
from growth_loops.loops import approvals
from growth_loops.loops.errors import LoopError
from growth_loops.loops.lifecycle import Event, transition
from growth_loops.loops.spec import LoopSpec
from lake.locks import table_lock
from lake.paths import LakePaths

__all__ = ["KillSwitchResult", "resume", "stop"]


@dataclass(frozen=True)
class KillSwitchResult:
    """What ``stop`` or ``resume`` changed.

    Attributes:
        loop: The loop.
        flag: The flag key rewritten (None for a message loop).
        flag_changed: Whether the published document changed.
        messages: Messages withheld (stop) or released (resume).
        document_hash: The published document's content hash afterwards (None without a document).
    """

    loop: str
    flag: str | None
    flag_changed: bool
    messages: int
    document_hash: str | None


def _spec(loop: str | LoopSpec) -> LoopSpec:
    if isinstance(loop, LoopSpec):
        return loop
    from growth_loops.loops.catalog import default_loops

    specs = {candidate.spec.name: candidate.spec for candidate in default_loops()}
    if loop not in specs:
        raise LoopError(f"loop {loop!r}", "there is no such loop", f"Use one of {', '.join(specs)}.")
    return specs[loop]


def _document(paths: LakePaths) -> dict:
    try:
        return load_features_document(features_document_path(paths))
    except ActuationError:
        return {"features": {}}  # nothing published yet: the product runs its defaults


def stop(paths: LakePaths, loop: str | LoopSpec, *, actor: str, reason: str,
         now: datetime.datetime | None = None) -> KillSwitchResult:
    """Send every unit of ``loop`` to control now and withhold its messages (see the module docstring).

    Raises:
        LoopError: the loop is unknown or already stopped, or no reason was given.
    """
    spec = _spec(loop)
    if not reason.strip():
        raise LoopError(f"stopping {spec.name}", "no reason was given", "Say why (--reason): it goes to the audit log.")
    now = now or datetime.datetime.now(datetime.UTC)
    with table_lock(paths, "loops"):
        transition(approvals.lifecycle(paths, spec.name, approvals.LOOP_VERSION), Event("stopped"))  # refuse early
        doc = _document(paths)
        flag, before, changed, digest = None, None, False, None
        if spec.actuation != "message":
            flag = spec.target
            before = doc["features"].get(flag)
            control = Rollback(key=flag, default=spec.control, reason=reason, decision_id=f"{spec.name}-stopped")
            doc["features"][flag] = control.to_feature()
            doc["features"] = dict(sorted(doc["features"].items()))
            changed = before != doc["features"][flag]
            digest = publish_features_document(doc, features_document_path(paths))
        withheld = withhold(paths, loop=spec.name)
        approvals.record_event(paths, spec.name, approvals.LOOP_VERSION, "stopped", actor=actor, reason=reason,
                               now=now, evidence={"flag": flag, "flag_before": before, "withheld": withheld,
                                                  "document_hash": digest})
    return KillSwitchResult(spec.name, flag, changed, len(withheld), digest)


def resume(paths: LakePaths, loop: str | LoopSpec, *, actor: str, reason: str = "",
           now: datetime.datetime | None = None) -> KillSwitchResult:
    """Reverse the last ``stop`` of ``loop`` (see the module docstring).

    Raises:
        LoopError: the loop is unknown or not stopped.
    """
    spec = _spec(loop)
    now = now or datetime.datetime.now(datetime.UTC)
    with table_lock(paths, "loops"):
        transition(approvals.lifecycle(paths, spec.name, approvals.LOOP_VERSION), Event("resumed"))  # refuse early
        stops = approvals.list_events(paths, loop=spec.name, kind="stopped")
        evidence = json.loads(stops["evidence"][-1]) if stops.height else {}
        doc = _document(paths)
        changed, digest = False, None
        flag, before = evidence.get("flag"), evidence.get("flag_before")
        if flag is not None:
            stopped_entry = Rollback(key=flag, default=spec.control, reason="",
                                     decision_id=f"{spec.name}-stopped").to_feature()
            current = doc["features"].get(flag)
            if current is not None and canonical_json(current) == canonical_json(stopped_entry):
                if before is None:
                    doc["features"].pop(flag)
                else:
                    doc["features"][flag] = before
                changed = True
            digest = publish_features_document(doc, features_document_path(paths))
        released = release(paths, evidence.get("withheld", []))
        approvals.record_event(paths, spec.name, approvals.LOOP_VERSION, "resumed", actor=actor,
                               reason=reason or "resumed", now=now,
                               evidence={"flag": flag, "flag_restored": changed, "released": released})
    return KillSwitchResult(spec.name, flag, changed, len(released), digest)

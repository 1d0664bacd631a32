"""Growth loops: declared once (``LoopSpec``), deciding from features, actuating through the outbox,
measured against control, rolled back by guardrails, and approved by people.

* ``spec`` — ``LoopSpec``, ``Guardrail``, ``ApprovalPolicy``;
* ``audit`` — the append-only decision audit log;
* ``approvals`` — human approval of policy versions.
"""

from growth_loops.loops.errors import LoopError
from growth_loops.loops.spec import ApprovalPolicy, Guardrail, LoopSpec

__all__ = ["ApprovalPolicy", "Guardrail", "LoopError", "LoopSpec"]

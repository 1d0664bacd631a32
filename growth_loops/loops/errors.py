"""The error growth loops raise when a declaration, a decision or an approval is malformed."""

from __future__ import annotations

from lake.errors import GrowthlakeError

__all__ = ["LoopError"]


class LoopError(GrowthlakeError, ValueError):
    """A loop declaration, decision, approval or guardrail input is malformed or not allowed."""

    def __init__(self, subject: str, problem: str, fix: str) -> None:
        self.subject = subject
        super().__init__(f"{subject}: {problem}. {fix}")

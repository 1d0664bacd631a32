"""The error the metric layer raises when its spec or a metric request is malformed."""

from __future__ import annotations

from lake.errors import GrowthlakeError

__all__ = ["MetricError"]


class MetricError(GrowthlakeError, ValueError):
    """A measure or metric of the metric layer is malformed, unknown, or asked of the wrong data."""

    def __init__(self, subject: str, problem: str, fix: str) -> None:
        self.subject = subject
        super().__init__(f"{subject}: {problem}. {fix}")

"""The error the experiment engine raises when an assignment or an analysis input is malformed."""

from __future__ import annotations

from lake.errors import GrowthlakeError

__all__ = ["ExperimentError"]


class ExperimentError(GrowthlakeError, ValueError):
    """An experiment definition (seed, weights, coverage) or an analysis input is malformed.

    It is also a ``ValueError`` so that callers treating bad arguments generically still catch it.
    It lives here rather than in ``lake/errors.py`` because the experiment engine is a pure,
    self-contained library; move it there when experiments are wired into the lake.
    """

    def __init__(self, subject: str, problem: str, fix: str) -> None:
        self.subject = subject
        super().__init__(f"{subject}: {problem}. {fix}")

"""The error the feature store raises when a view or its inputs are malformed."""

from __future__ import annotations

from lake.errors import GrowthlakeError

__all__ = ["FeatureStoreError"]


class FeatureStoreError(GrowthlakeError, ValueError):
    """A feature view declaration or a point-in-time input is malformed.

    It is also a ``ValueError`` so that callers treating bad arguments generically still catch it.
    It lives here rather than in ``lake/errors.py`` only because this first piece of the feature
    store is self-contained; move it there when the store is wired into the lake.
    """

    def __init__(self, subject: str, problem: str, fix: str) -> None:
        self.subject = subject
        super().__init__(f"{subject}: {problem}. {fix}")

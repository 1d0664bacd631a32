"""Write-audit-publish: the one way every layer publishes (DESIGN.md, "every layer publishes the same way").

A layer *stages* what it is about to publish (frames in memory, a private copy of a file), *audits*
the staged result (Great Expectations suites, anomaly gates, reconciliations) and *publishes* it
(Delta commits, an atomic rename, a document write) only when every blocking check passed. A failed
audit publishes nothing: the layer's readers stay on the previous version. Orchestration reports the
:class:`Verdict` (one asset-check result per :class:`CheckOutcome`); it never re-validates.

::

    verdict = publish_if_audited(stage=lambda: frames, audit=audit_frames, publish=commit_frames)
    if not verdict.passed:
        ...  # verdict.failed names each failing check and why; nothing was published
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["CheckOutcome", "Verdict", "outcome_of", "publish_if_audited"]

S = TypeVar("S")
R = TypeVar("R")


@dataclass(frozen=True)
class CheckOutcome:
    """One check of an audit: its name (the asset check's name), pass/fail, why, and figures.

    Attributes:
        name: the check, e.g. ``gx_silver_events``.
        passed: whether the staged data passed it.
        summary: one readable sentence (the failing expectations, or what passed).
        metadata: plain figures (rows validated, the band, …) for logs and Dagster metadata.
        blocking: a failing blocking check stops the publish; a non-blocking one is only reported.
    """

    name: str
    passed: bool
    summary: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    blocking: bool = True


@dataclass
class Verdict(Generic[R]):
    """What an audit decided and whether the staged data was published.

    Attributes:
        checks: every check's outcome, in the order the audit ran them.
        published: True when the publish step ran (every blocking check passed).
        result: what the publish step returned (None when nothing was published).
    """

    checks: list[CheckOutcome] = field(default_factory=list)
    published: bool = False
    result: R | None = None

    @property
    def passed(self) -> bool:
        """Every blocking check passed."""
        return all(c.passed for c in self.checks if c.blocking)

    @property
    def failed(self) -> list[CheckOutcome]:
        """The checks that failed (blocking or not)."""
        return [c for c in self.checks if not c.passed]

    def check(self, name: str) -> CheckOutcome | None:
        """The outcome of the check called ``name`` (None if the audit did not run it)."""
        return next((c for c in self.checks if c.name == name), None)

    def summary(self) -> str:
        """``published`` or ``held: <check>: <why>; …``."""
        if self.passed:
            return "published" if self.published else "passed (nothing published)"
        return "held: " + "; ".join(f"{c.name}: {c.summary or 'failed'}" for c in self.failed if c.blocking)


def outcome_of(name: str, outcome: Any, *, metadata: dict[str, Any] | None = None) -> CheckOutcome:
    """A :class:`CheckOutcome` from a validation outcome (anything with ``success`` and ``summary()``,
    e.g. :class:`expectations.ValidationOutcome`)."""
    return CheckOutcome(name, bool(outcome.success), outcome.summary(), dict(metadata or {}))


def publish_if_audited(stage: Callable[[], S], audit: Callable[[S], Iterable[CheckOutcome]],
                       publish: Callable[[S], R]) -> Verdict[R]:
    """Stage, audit the staged result, and publish it only if every blocking check passed.

    Args:
        stage: builds what would be published (nothing visible to readers may change here).
        audit: the checks on the staged result.
        publish: makes the staged result visible (commits); called at most once.

    Returns:
        The verdict: each check's outcome, whether it was published and what publishing returned.
        An exception of any step propagates (nothing after it runs).
    """
    staged = stage()
    verdict: Verdict[R] = Verdict(checks=list(audit(staged)))
    if verdict.passed:
        verdict.result = publish(staged)
        verdict.published = True
    return verdict

"""Errors raised by the expectations package.

``ExpectationsError`` is this package's root; the project-wide root error class will be
wired in above it later. The specific subclasses also derive from ``ValueError`` because
each one means "the caller asked for something that does not exist or is malformed".
"""

from __future__ import annotations

from collections.abc import Iterable


class ExpectationsError(Exception):
    """Root of every error raised by ``expectations``."""


def _listing(names: Iterable[str]) -> str:
    names = sorted(names)
    return ", ".join(repr(n) for n in names) if names else "(none)"


class UnknownSuiteError(ExpectationsError, ValueError):
    """No suite file exists for the requested name."""

    def __init__(self, suite: str, known: Iterable[str]) -> None:
        self.suite = suite
        self.known = tuple(sorted(known))
        super().__init__(
            f"no expectation suite named {suite!r}; known suites: {_listing(self.known)}. "
            f"Add expectations/suites/{suite}.json to declare it."
        )


class MissingParameterError(ExpectationsError, ValueError):
    """A suite declares ``$PARAMETER`` values that the caller did not pass."""

    def __init__(self, suite: str, missing: Iterable[str], given: Iterable[str]) -> None:
        self.suite = suite
        self.missing = tuple(sorted(missing))
        self.given = tuple(sorted(given))
        super().__init__(
            f"suite {suite!r} needs parameter(s) {_listing(self.missing)} but they were not "
            f"passed (given: {_listing(self.given)}). "
            f"Call validate(batch, {suite!r}, parameters={{...}}) with a value for each."
        )


class InvalidParameterError(ExpectationsError, ValueError):
    """A parameter value cannot be used by the expectation that refers to it."""

    def __init__(self, suite: str, parameter: str, problem: str) -> None:
        self.suite = suite
        self.parameter = parameter
        super().__init__(f"suite {suite!r}, parameter {parameter!r}: {problem}")


class InvalidSuiteError(ExpectationsError, ValueError):
    """A suite file is malformed (bad JSON, unknown expectation type, bad kwargs)."""

    def __init__(self, suite: str, problem: str) -> None:
        self.suite = suite
        super().__init__(
            f"expectation suite {suite!r} (expectations/suites/{suite}.json) is invalid: {problem}"
        )

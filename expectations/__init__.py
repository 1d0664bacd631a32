"""Great Expectations suites for every gated asset, and the runner that applies them.

Suites are declared in ``expectations/suites/<suite>.json``. ``validate`` checks an
in-memory batch (pyarrow or pandas) against one, before publishing and in blocking asset
checks. Importing this package does not import Great Expectations; the first ``validate``
call does.
"""

from expectations.errors import (
    ExpectationsError,
    InvalidParameterError,
    InvalidSuiteError,
    MissingParameterError,
    UnknownSuiteError,
)
from expectations.outcome import FailedExpectation, ValidationOutcome
from expectations.runner import validate, warm_up
from expectations.suites import suite_names

__all__ = [
    "ExpectationsError",
    "FailedExpectation",
    "InvalidParameterError",
    "InvalidSuiteError",
    "MissingParameterError",
    "UnknownSuiteError",
    "ValidationOutcome",
    "suite_names",
    "validate",
    "warm_up",
]

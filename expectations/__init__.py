"""Great Expectations suites for every gated asset, and the runner that applies them.

Suites are declared in ``expectations/suites/<suite>.json``. ``validate`` checks an
in-memory batch (pyarrow or pandas) against one, before publishing and in blocking asset
checks. Importing this package does not import Great Expectations; the first ``validate``
call does.
"""

from expectations.bands import learned_band
from expectations.errors import (
    ExpectationsError,
    InvalidParameterError,
    InvalidSuiteError,
    MissingParameterError,
    UnknownSuiteError,
)
from expectations.oec import validate_daily_oec
from expectations.outcome import FailedExpectation, ValidationOutcome
from expectations.runner import unexpected_partitions, validate, warm_up
from expectations.suites import suite_names

__all__ = [
    "ExpectationsError",
    "FailedExpectation",
    "InvalidParameterError",
    "InvalidSuiteError",
    "MissingParameterError",
    "UnknownSuiteError",
    "ValidationOutcome",
    "learned_band",
    "suite_names",
    "unexpected_partitions",
    "validate",
    "validate_daily_oec",
    "warm_up",
]

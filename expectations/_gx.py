"""The only module that touches Great Expectations; everything here imports it lazily.

``import great_expectations`` costs seconds, so nothing here runs at import time. One
ephemeral context per process holds one pandas datasource, one dataframe asset and one
whole-dataframe batch definition; they are built on first use and reused by every
validation, as are the GX suites built from the JSON declarations.
"""

from __future__ import annotations

import copy
import os
import threading
from typing import TYPE_CHECKING, Any

from expectations.errors import InvalidSuiteError
from expectations.suites import SuiteSpec

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult
    from great_expectations.core.batch_definition import BatchDefinition

# Unexpected values are summarised, never listed in full: five examples are enough to
# recognise a problem, and BASIC skips the value_counts that SUMMARY computes.
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 5}

# GX keeps the current batch's data in the datasource's execution engine under a batch id
# derived from the (shared) asset, so two threads validating at once would read each
# other's frame. One lock serialises validations; Dagster runs steps in processes anyway.
_lock = threading.RLock()
_batch_definition: BatchDefinition | None = None
_suites: dict[str, ExpectationSuite] = {}


def ephemeral_context(**config: Any):
    """An in-memory GX context (no project folder, analytics and progress bars off); ``config``
    adds ``DataContextConfig`` fields such as ``data_docs_sites``."""
    # Must be set before GX is imported; GX reads it from the environment.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    return gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            **config,
        ),
    )


def _get_batch_definition() -> BatchDefinition:
    global _batch_definition
    with _lock:
        if _batch_definition is None:
            context = ephemeral_context()
            _batch_definition = (
                context.data_sources.add_pandas("growthlake_in_memory")
                .add_dataframe_asset("batch")
                .add_batch_definition_whole_dataframe("whole_batch")
            )
        return _batch_definition


def expectation_id(suite: str, index: int) -> str:
    """The id given to the ``index``-th expectation of ``suite`` (GX reorders results)."""
    return f"{suite}#{index}"


def index_from_id(expectation_id_: str | None) -> int | None:
    if not expectation_id_ or "#" not in expectation_id_:
        return None
    return int(expectation_id_.rsplit("#", 1)[1])


def _get_suite(spec: SuiteSpec) -> ExpectationSuite:
    with _lock:
        suite = _suites.get(spec.name)
        if suite is None:
            suite = _suites[spec.name] = build_suite(spec)
        return suite


def build_suite(spec: SuiteSpec) -> ExpectationSuite:
    """A new GX suite for ``spec`` (not cached, bound to no context).

    Raises:
        InvalidSuiteError: An expectation GX cannot build.
    """
    from great_expectations import exceptions as gx_exceptions
    from great_expectations.core import ExpectationSuite
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    configurations = []
    for index, exp in enumerate(spec.expectations):
        configuration = ExpectationConfiguration(
            type=exp.type,
            kwargs=copy.deepcopy(dict(exp.kwargs)),
            meta=copy.deepcopy(dict(exp.meta)),
            id=expectation_id(spec.name, index),
        )
        # ExpectationSuite logs and *drops* an invalid expectation; build it here first
        # so a typo in a suite file fails loudly instead of silently weakening the gate.
        try:
            configuration.to_domain_obj()
        except (gx_exceptions.GreatExpectationsError, ValueError, TypeError) as exc:
            raise InvalidSuiteError(
                spec.name, f"expectation #{index} ({exp.type}): {exc}"
            ) from exc
        configurations.append(configuration)
    suite = ExpectationSuite(name=spec.name, expectations=configurations)
    if len(suite.expectations) != len(spec.expectations):  # pragma: no cover - defensive
        raise InvalidSuiteError(spec.name, "Great Expectations dropped an expectation")
    return suite


def run_suite(
    frame: pd.DataFrame,
    spec: SuiteSpec,
    parameters: dict[str, Any],
    *,
    unexpected_index_columns: list[str] | None = None,
) -> ExpectationSuiteValidationResult:
    """Validate ``frame`` against ``spec`` with GX and return GX's raw result.

    With ``unexpected_index_columns``, every unexpected row is reported (GX's ``COMPLETE``
    result format) as the values of those columns (``unexpected_index_list``); otherwise a
    summary (``BASIC``: counts and five examples).
    """
    # GX's v1 Validator is what both `Batch.validate` and `ValidationDefinition.run` run.
    # Calling it on the cached batch definition loads the frame once; `get_batch(...)
    # .validate(...)` loads it twice, and GX fingerprints every load by hashing the whole
    # frame (~40% of a warm call). `ValidationDefinition.run` would also keep every result
    # in the context's in-memory results store, which grows for the life of the process.
    from great_expectations.validator.v1_validator import Validator

    batch_definition = _get_batch_definition()
    suite = _get_suite(spec)
    with _lock:
        validator = Validator(
            batch_definition=batch_definition,
            batch_parameters={"dataframe": frame},
            result_format=copy.deepcopy(_RESULT_FORMAT)
            if unexpected_index_columns is None
            else {
                "result_format": "COMPLETE",
                "unexpected_index_column_names": list(unexpected_index_columns),
                "return_unexpected_index_query": False,
            },
        )
        return validator.validate_expectation_suite(suite, expectation_parameters=parameters)

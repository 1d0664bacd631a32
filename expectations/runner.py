"""Validate an in-memory batch against a declared suite.

Used before publishing (write-audit-publish) and as the body of blocking asset checks.
Great Expectations, pandas and pyarrow are imported on first use, not at import time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from expectations.errors import InvalidParameterError, MissingParameterError
from expectations.outcome import FailedExpectation, ValidationOutcome, example, json_safe
from expectations.suites import SuiteSpec, load_suite

if TYPE_CHECKING:
    import pandas as pd

_PARTIAL_LIMIT = 5
_BOUND_KWARGS = frozenset({"min_value", "max_value"})


def validate(
    batch: Any, suite: str, *, parameters: Mapping[str, Any] | None = None
) -> ValidationOutcome:
    """Validate a batch of rows against a suite.

    Args:
        batch: The rows: a ``pyarrow.Table`` / ``RecordBatch``, a pandas ``DataFrame``, or any
            frame with a ``to_arrow()`` method (polars). It is not modified.
        suite: Suite name, see ``suite_names()``.
        parameters: Values for the suite's ``$PARAMETER`` kwargs, e.g. ``planned_events``
            (an iterable of names) or ``min_event_ts`` (a UTC-aware ``datetime`` or an
            RFC 3339 string). Extra keys are ignored.

    Returns:
        The outcome; ``outcome.success`` is the gate's verdict.

    Raises:
        UnknownSuiteError: No suite of that name.
        MissingParameterError: The suite needs a parameter that was not passed.
        InvalidParameterError: A parameter is ``None`` or a naive / unparseable timestamp.
        InvalidSuiteError: The suite file is malformed.
        TypeError: ``batch`` is not a supported frame type.
    """
    spec = load_suite(suite)
    given = dict(parameters or {})
    missing = spec.parameters - given.keys()
    if missing:
        raise MissingParameterError(spec.name, missing, given)
    frame = _to_pandas(batch, columns=spec.columns)
    resolved = _resolve_parameters(spec, frame, given)

    from expectations import _gx

    result = _gx.run_suite(frame, spec, resolved)
    return _outcome(spec, result, row_count=len(frame))


def _to_pandas(batch: Any, *, columns: frozenset[str] | None) -> pd.DataFrame:
    """The batch as pandas, reduced to ``columns`` when given (GX hashes every column it gets).

    Columns the suite reads but the batch lacks are left out, so GX reports them missing.
    """
    import pandas as pd
    import pyarrow as pa

    if callable(getattr(batch, "to_arrow", None)) and not isinstance(batch, pd.DataFrame):
        batch = batch.to_arrow()  # polars and friends
    if isinstance(batch, pd.DataFrame):
        keep = None if columns is None else [c for c in batch.columns if c in columns]
        frame = batch if keep is None else batch[keep]
    elif isinstance(batch, (pa.Table, pa.RecordBatch)):
        keep = None if columns is None else [c for c in batch.schema.names if c in columns]
        frame = (batch if keep is None else batch.select(keep)).to_pandas()
    else:
        raise TypeError(
            f"validate() takes a pyarrow Table/RecordBatch, a pandas DataFrame or a frame "
            f"with to_arrow(); got {type(batch).__name__}"
        )
    # GX's pandas `between` is vectorised only for int64/float64 and datetimes; other
    # numeric widths (e.g. int32 `_line_number`) fall back to a per-row Python call.
    narrow = {
        name: dtype.kind
        for name, dtype in frame.dtypes.items()
        if getattr(dtype, "kind", None) in ("i", "u", "f") and getattr(dtype, "itemsize", 8) < 8
    }
    if narrow:
        frame = frame.assign(
            **{
                str(name): frame[name].astype("int64" if kind in "iu" else "float64")
                for name, kind in narrow.items()
            }
        )
    return frame


def _resolve_parameters(
    spec: SuiteSpec, frame: pd.DataFrame, given: dict[str, Any]
) -> dict[str, Any]:
    """Bring parameter values into the shape GX compares with the batch's columns."""
    import pandas as pd

    timestamp_params = {
        param
        for exp in spec.expectations
        for kwarg, param in exp.parameters.items()
        if kwarg in _BOUND_KWARGS
        and exp.column in frame.columns
        and pd.api.types.is_datetime64_any_dtype(frame[exp.column].dtype)
    }
    resolved: dict[str, Any] = {}
    for name in spec.parameters:
        value = given[name]
        if value is None:
            raise InvalidParameterError(
                spec.name, name, "is None; GX would then treat the expectation as vacuously true"
            )
        if name in timestamp_params:
            value = _utc_timestamp(spec.name, name, value)
        elif isinstance(value, (set, frozenset)):
            value = sorted(value, key=str)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dt.datetime):
            value = _utc_timestamp(spec.name, name, value)
        resolved[name] = value
    return resolved


def _utc_timestamp(suite: str, name: str, value: Any) -> pd.Timestamp:
    # GX compares datetime columns with the bound as given: a string bound raises inside
    # GX and a naive one cannot be compared with the UTC columns, so resolve both here.
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(suite, name, f"{value!r} is not a timestamp ({exc})") from exc
    if ts is pd.NaT:
        raise InvalidParameterError(suite, name, "is NaT")
    if ts.tzinfo is None:
        raise InvalidParameterError(
            suite, name, f"{value!r} has no timezone; pass a UTC-aware timestamp"
        )
    return ts.tz_convert("UTC")


def _rounded(percent: Any) -> float | None:
    percent = json_safe(percent)
    return round(percent, 4) if isinstance(percent, float) else percent


def _exception_message(exception_info: Any) -> str | None:
    """GX reports errors either flat or keyed by metric id; return the first message."""
    if not isinstance(exception_info, dict):
        return None
    if "raised_exception" in exception_info:
        return exception_info.get("exception_message") if exception_info["raised_exception"] else None
    for info in exception_info.values():
        message = _exception_message(info)
        if message:
            return message
    return None


def _expectation(spec: SuiteSpec, r: Any, position: int) -> tuple[int, FailedExpectation]:
    """One GX expectation result as a :class:`FailedExpectation`, keyed by its suite-file position."""
    from expectations import _gx

    config = r.expectation_config
    index = _gx.index_from_id(config.id)
    exp = spec.expectations[index] if index is not None else None
    observed_raw = r.result or {}
    partial = list(observed_raw.get("partial_unexpected_list") or [])[:_PARTIAL_LIMIT]
    observed = {
        "unexpected_count": json_safe(observed_raw.get("unexpected_count")),
        "unexpected_percent": _rounded(observed_raw.get("unexpected_percent")),
        "partial_unexpected_list": [example(v) for v in partial],
        "observed_value": json_safe(observed_raw.get("observed_value")),
        "exception": _exception_message(r.exception_info),
    }
    if exp is not None and exp.sensitive:
        observed["partial_unexpected_list"] = []
        observed["examples_withheld"] = True
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    column = kwargs.get("column")
    return (
        index if index is not None else len(spec.expectations) + position,
        FailedExpectation(
            expectation=config.type,
            column=column if isinstance(column, str) else None,
            kwargs=json_safe(kwargs),
            observed=observed,
            why=exp.why if exp is not None else "",
        ),
    )


def _tolerated(r: Any) -> bool:
    """A passing result that had unexpected rows: it held thanks to ``mostly``."""
    mostly = r.expectation_config.kwargs.get("mostly")
    unexpected = (r.result or {}).get("unexpected_count")
    return bool(r.success and isinstance(mostly, (int, float)) and mostly < 1 and unexpected)


def _outcome(spec: SuiteSpec, result: Any, *, row_count: int) -> ValidationOutcome:
    failed: list[tuple[int, FailedExpectation]] = []
    tolerated: list[tuple[int, FailedExpectation]] = []
    for position, r in enumerate(result.results):
        if not r.success:
            failed.append(_expectation(spec, r, position))
        elif _tolerated(r):
            tolerated.append(_expectation(spec, r, position))
    failed.sort(key=lambda pair: pair[0])
    tolerated.sort(key=lambda pair: pair[0])
    evaluated = len(result.results)
    return ValidationOutcome(
        suite=spec.name,
        success=bool(result.success),
        evaluated=evaluated,
        succeeded=evaluated - len(failed),
        failed=tuple(f for _, f in failed),
        row_count=row_count,
        tolerated=tuple(f for _, f in tolerated),
    )


def unexpected_partitions(
    batch: Any,
    suite: str,
    *,
    partition_column: str,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Which partitions of a batch hold the rows a suite finds unexpected.

    A batch that spans several partitions (e.g. landing hours, in ``_landing_partition``) is
    validated once; when that validation fails, this says where to look: Great Expectations
    reports every unexpected row with its partition (``unexpected_index_column_names``), for
    the expectations that failed and for those that held only thanks to ``mostly``. Values of
    sensitive expectations are never read, only the partition.

    Args:
        batch: The rows, as for :func:`validate`, including ``partition_column``.
        suite: Suite name.
        partition_column: The column naming each row's partition.
        parameters: The suite's runtime parameters, as for :func:`validate`.

    Returns:
        Unexpected rows per partition (summed over expectations); partitions without any are
        left out. An expectation that could not run (a missing column) or judges the table as a
        whole names no rows: its failure is not attributed to any partition here.

    Raises:
        The errors of :func:`validate`; ``KeyError`` when the batch lacks ``partition_column``.
    """
    spec = load_suite(suite)
    given = dict(parameters or {})
    missing = spec.parameters - given.keys()
    if missing:
        raise MissingParameterError(spec.name, missing, given)
    columns = None if spec.columns is None else spec.columns | {partition_column}
    frame = _to_pandas(batch, columns=columns)
    if partition_column not in frame.columns:
        raise KeyError(f"the batch has no column {partition_column!r} to attribute unexpected rows to")
    resolved = _resolve_parameters(spec, frame, given)

    from expectations import _gx

    result = _gx.run_suite(frame, spec, resolved, unexpected_index_columns=[partition_column])
    counts: dict[str, int] = {}
    for r in result.results:
        if not (not r.success or _tolerated(r)):
            continue
        for row in (r.result or {}).get("unexpected_index_list") or []:
            if isinstance(row, dict) and row.get(partition_column) is not None:
                key = str(row[partition_column])
                counts[key] = counts.get(key, 0) + 1
    return counts


def warm_up() -> None:
    """Import Great Expectations and build its context now (seconds), e.g. in a thread while the
    caller's CPU-heavy work runs elsewhere, so the first :func:`validate` does not pay for it."""
    from expectations import _gx

    _gx._get_batch_definition()

"""Suite declarations: read and check ``expectations/suites/<suite>.json``.

A suite file is a JSON list of expectations, each
``{"type": "expect_...", "kwargs": {...}, "meta": {"why": "..."}}``. A kwarg whose value is
``{"$PARAMETER": "name"}`` is a runtime parameter the caller passes to ``validate``.
``meta.sensitive: true`` marks an expectation whose offending values must never be echoed
(e.g. PII detectors): results then report how many rows failed and where, not the values.

This module only reads JSON; it never imports Great Expectations.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from expectations.errors import InvalidSuiteError, UnknownSuiteError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

_SUITE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PARAMETER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ALLOWED_KEYS = frozenset({"type", "kwargs", "meta"})


@dataclass(frozen=True)
class ExpectationSpec:
    """One declared expectation, as written in the suite file."""

    type: str
    kwargs: Mapping[str, Any]
    meta: Mapping[str, Any]
    #: kwarg name -> suite parameter name, for kwargs given as ``{"$PARAMETER": name}``.
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def column(self) -> str | None:
        column = self.kwargs.get("column")
        return column if isinstance(column, str) else None

    @property
    def why(self) -> str:
        return str(self.meta["why"])

    @property
    def sensitive(self) -> bool:
        return bool(self.meta.get("sensitive", False))


@dataclass(frozen=True)
class SuiteSpec:
    """A whole suite: its name, its expectations in file order, its runtime parameters."""

    name: str
    expectations: tuple[ExpectationSpec, ...]

    @property
    def parameters(self) -> frozenset[str]:
        return frozenset(p for e in self.expectations for p in e.parameters.values())

    @property
    def columns(self) -> frozenset[str] | None:
        """Every column the suite reads, or ``None`` if some expectation reads the whole table."""
        columns: set[str] = set()
        for exp in self.expectations:
            given = [exp.kwargs.get(k) for k in ("column", "column_A", "column_B")]
            given += list(exp.kwargs.get("column_list") or [])
            named = [c for c in given if isinstance(c, str)]
            if exp.type.startswith("expect_table_") or not named:
                return None
            columns.update(named)
        return frozenset(columns)


def _suites_dir() -> Traversable:
    return resources.files("expectations").joinpath("suites")


def suite_names() -> list[str]:
    """List the suites shipped with the package.

    Returns:
        Sorted suite names, one per ``expectations/suites/<name>.json`` file.
    """
    return sorted(
        entry.name[: -len(".json")]
        for entry in _suites_dir().iterdir()
        if entry.name.endswith(".json") and _SUITE_NAME.match(entry.name[: -len(".json")])
    )


@functools.cache
def load_suite(name: str) -> SuiteSpec:
    """Read and check one suite file (cached per process).

    Args:
        name: Suite name, the file stem under ``expectations/suites/``.

    Returns:
        The parsed suite.

    Raises:
        UnknownSuiteError: No such suite file.
        InvalidSuiteError: The file is not a well-formed suite.
    """
    if not isinstance(name, str) or not _SUITE_NAME.match(name):
        raise UnknownSuiteError(str(name), suite_names())
    path = _suites_dir().joinpath(f"{name}.json")
    if not path.is_file():
        raise UnknownSuiteError(name, suite_names())
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidSuiteError(name, f"not valid JSON ({exc})") from exc
    if not isinstance(raw, list) or not raw:
        raise InvalidSuiteError(name, "the file must hold a non-empty JSON list of expectations")
    return SuiteSpec(
        name=name,
        expectations=tuple(_parse_expectation(name, i, item) for i, item in enumerate(raw)),
    )


def _parse_expectation(suite: str, index: int, item: Any) -> ExpectationSpec:
    where = f"expectation #{index}"
    if not isinstance(item, dict):
        raise InvalidSuiteError(suite, f"{where} is not a JSON object")
    extra = set(item) - _ALLOWED_KEYS
    if extra:
        raise InvalidSuiteError(suite, f"{where} has unknown keys {sorted(extra)}")
    type_ = item.get("type")
    if not isinstance(type_, str) or not type_.startswith("expect_"):
        raise InvalidSuiteError(suite, f"{where} needs a 'type' like 'expect_...'")
    kwargs = item.get("kwargs")
    if not isinstance(kwargs, dict):
        raise InvalidSuiteError(suite, f"{where} ({type_}) needs a 'kwargs' object")
    meta = item.get("meta")
    if not isinstance(meta, dict) or not str(meta.get("why", "")).strip():
        raise InvalidSuiteError(
            suite, f"{where} ({type_}) needs meta.why: one sentence saying what it protects"
        )
    parameters: dict[str, str] = {}
    for key, value in kwargs.items():
        if isinstance(value, dict) and "$PARAMETER" in value:
            param = value["$PARAMETER"]
            # Only plain names: GX also evaluates arithmetic in $PARAMETER strings, which
            # would make "which parameters does this suite need" unanswerable up front.
            if set(value) != {"$PARAMETER"} or not isinstance(param, str) or not (
                _PARAMETER_NAME.match(param)
            ):
                raise InvalidSuiteError(
                    suite,
                    f"{where} ({type_}) kwarg {key!r} must be {{\"$PARAMETER\": \"<name>\"}} "
                    "with a plain identifier",
                )
            parameters[key] = param
    return ExpectationSpec(
        type=type_,
        kwargs=MappingProxyType(kwargs),
        meta=MappingProxyType(meta),
        parameters=MappingProxyType(parameters),
    )

"""Point-in-time retrieval: the feature values an entity had at a moment, never later ones."""

from __future__ import annotations

from typing import Literal

import polars as pl

from growth_loops.features.errors import FeatureStoreError
from growth_loops.features.views import FeatureView

__all__ = ["VALID_FROM", "get_historical_features"]

VALID_FROM = "valid_from"
"""Column of a view's history: the moment from which a row's values hold (until superseded)."""

_POLARS_DTYPES: dict[str, pl.DataType] = {
    "int64": pl.Int64(),
    "float64": pl.Float64(),
    "string": pl.String(),
    "bool": pl.Boolean(),
}
TimeUnit = Literal["ns", "us", "ms"]  # polars' time units (polars._typing.TimeUnit)
_UNIT_FINENESS: dict[TimeUnit, int] = {"ms": 0, "us": 1, "ns": 2}

# Private working columns; prefixed so they cannot clash with real ones.
_ROW = "__pit_row"
_HISTORY_ROW = "__pit_history_row"
_KEY = "__pit_key"
_AT = "__pit_at"
_VALID = "__pit_valid_from"


def get_historical_features(
    entity_df: pl.DataFrame,
    history: pl.DataFrame,
    view: FeatureView,
    *,
    entity_column: str = "person_id",
    timestamp_column: str = "event_timestamp",
) -> pl.DataFrame:
    """Attach to every lookup row the view's feature values as they were at its timestamp.

    For each row of ``entity_df`` the history row of the same entity with the latest
    ``valid_from <= timestamp`` is taken (a value valid from exactly the lookup moment counts;
    one from any later moment never does). The features are null when there is no such row or
    when it is expired, i.e. ``timestamp - valid_from > view.ttl`` (exactly ``ttl`` old is still
    served). When several history rows of one entity share a ``valid_from``, the last of them in
    ``history``'s row order wins, as for an append-only log where the later write corrects the
    earlier one. Rows with a null entity or timestamp get null features.

    Args:
        entity_df: The lookups: one row per (entity, moment); any extra columns are kept.
        history: The view's history: ``view.entity``, ``valid_from`` and the feature columns.
        view: The feature view to read.
        entity_column: Entity key column in ``entity_df``.
        timestamp_column: Lookup-moment column in ``entity_df``.

    Returns:
        ``entity_df`` with its rows in their original order (duplicates included) and the
        view's features appended as columns of their declared dtypes.

    Raises:
        FeatureStoreError: (a ``ValueError``) when a column is missing, a timestamp column is
            not time-zone-aware, entity key dtypes differ, a feature would overwrite an
            ``entity_df`` column, a history ``valid_from`` is null, or a feature cannot be cast
            to its declared dtype.
    """
    features = view.feature_names
    _require_columns(entity_df, "entity_df", (entity_column, timestamp_column))
    _require_columns(history, f"history of {view.name!r}", (view.entity, VALID_FROM, *features))
    clashes = [name for name in features if name in entity_df.columns]
    if clashes:
        raise FeatureStoreError(
            "entity_df",
            f"it already has columns named like features of {view.name!r}: {', '.join(clashes)}",
            "Drop or rename those columns before retrieving the view.",
        )
    at_dtype = _aware_datetime(entity_df, "entity_df", timestamp_column)
    valid_dtype = _aware_datetime(history, f"history of {view.name!r}", VALID_FROM)
    if history[VALID_FROM].null_count():
        raise FeatureStoreError(
            f"history of {view.name!r}",
            f"{history[VALID_FROM].null_count()} rows have a null {VALID_FROM}",
            "Every history row needs the moment its values became valid; fix or drop those rows.",
        )
    key_dtype, history_key_dtype = entity_df.schema[entity_column], history.schema[view.entity]
    if key_dtype != history_key_dtype:
        raise FeatureStoreError(
            "entity keys",
            f"entity_df.{entity_column} is {key_dtype} but history.{view.entity} is {history_key_dtype}",
            "Cast one side so both entity key columns have the same dtype.",
        )
    # Compare instants in UTC at the finer of the two resolutions, so no value is rounded earlier.
    unit = max(at_dtype.time_unit, valid_dtype.time_unit, key=_UNIT_FINENESS.__getitem__)

    lookups = (
        entity_df.with_row_index(_ROW)
        .select(
            _ROW,
            pl.col(entity_column).alias(_KEY),
            _as_utc(timestamp_column, unit).alias(_AT),
        )
        .drop_nulls([_KEY, _AT])
        .sort(_AT)
    )
    values = (
        _typed_history(history, view)
        .with_row_index(_HISTORY_ROW)
        .select(
            _HISTORY_ROW,
            pl.col(view.entity).alias(_KEY),
            _as_utc(VALID_FROM, unit).alias(_VALID),
            *features,
        )
        .drop_nulls(_KEY)
        # Ties on (entity, valid_from): keep the last row in history order (see docstring).
        .filter(pl.col(_HISTORY_ROW) == pl.col(_HISTORY_ROW).max().over(_KEY, _VALID))
        .drop(_HISTORY_ROW)
        .sort(_VALID)
    )
    # Both sides are sorted by their time column globally, hence also within each entity.
    matched = lookups.join_asof(
        values,
        left_on=_AT,
        right_on=_VALID,
        by=_KEY,
        strategy="backward",
        check_sortedness=False,
    )
    fresh = (pl.col(_AT) - pl.col(_VALID)) <= view.ttl
    matched = matched.select(
        _ROW,
        *(pl.when(fresh).then(pl.col(name)).otherwise(None).alias(name) for name in features),
    )
    return (
        entity_df.with_row_index(_ROW)
        .join(matched, on=_ROW, how="left")
        .sort(_ROW)
        .drop(_ROW)
    )


def _require_columns(frame: pl.DataFrame, label: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FeatureStoreError(
            label,
            f"missing columns {', '.join(missing)} (has {', '.join(frame.columns) or 'none'})",
            "Pass a frame with those columns, or name the right ones with entity_column/timestamp_column.",
        )


def _aware_datetime(frame: pl.DataFrame, label: str, column: str) -> pl.Datetime:
    dtype = frame.schema[column]
    if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
        raise FeatureStoreError(
            f"{label}.{column}",
            f"timestamps must be time-zone-aware datetimes, got {dtype}",
            "Make them UTC-aware, e.g. .dt.replace_time_zone('UTC') if they are naive UTC, "
            "so lookups and validity are compared as the same instants.",
        )
    return dtype


def _as_utc(column: str, unit: TimeUnit) -> pl.Expr:
    return pl.col(column).dt.convert_time_zone("UTC").dt.cast_time_unit(unit)


def _typed_history(history: pl.DataFrame, view: FeatureView) -> pl.DataFrame:
    try:
        return history.with_columns(
            pl.col(f.name).cast(_POLARS_DTYPES[f.dtype], strict=True) for f in view.features
        )
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        raise FeatureStoreError(
            f"history of {view.name!r}",
            f"a feature column does not match its declared dtype ({exc})",
            "Fix the source column's type or the Feature's dtype.",
        ) from exc

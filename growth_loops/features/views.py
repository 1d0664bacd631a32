"""Declarations of feature views: which features exist, for which entity, how long they stay fresh."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Literal

from growth_loops.features.aggregations import Aggregation
from growth_loops.features.errors import FeatureStoreError

__all__ = ["Feature", "FeatureDtype", "FeatureView"]

FeatureDtype = Literal["int64", "float64", "string", "bool"]
_DTYPES: tuple[str, ...] = ("int64", "float64", "string", "bool")
_CONSENTS: tuple[str, ...] = ("analytics", "marketing")


@dataclass(frozen=True)
class Feature:
    """One named, typed value a view serves per entity.

    Attributes:
        name: Column name in the view's history and in retrieved frames.
        dtype: Logical type; retrieval casts the history column to it.
        description: What the value means, for the catalog.
        aggregation: How the materializer computes it from the view's source (None for views
            whose history is supplied by hand, e.g. in tests of point-in-time retrieval).
    """

    name: str
    dtype: FeatureDtype
    description: str
    aggregation: Aggregation | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise FeatureStoreError(
                "feature", "the name is empty", "Give every feature a non-empty column name."
            )
        if self.dtype not in _DTYPES:
            raise FeatureStoreError(
                f"feature {self.name!r}",
                f"dtype {self.dtype!r} is not supported",
                f"Use one of {', '.join(_DTYPES)}.",
            )


@dataclass(frozen=True, kw_only=True)
class FeatureView:
    """A group of features for one entity, read from one source, that expire after ``ttl``.

    Keyword-only, so declarations read as a table of settings.

    Attributes:
        name: Unique name of the view.
        entity: Entity key column in the view's history.
        features: The features served, in output column order.
        ttl: A value older than this (relative to the lookup time) is treated as missing.
        owner: Team or person answerable for the view.
        source: The table the history comes from (e.g. a silver or mart table).
        requires_consent: Consent purpose a person must have granted for the view to be served;
            for anyone else the materializer writes nulls (never the values).
        description: What the view is for.
        population_days: The materializer writes a row for every person active within this many
            days; others get no new row and their last one expires after ``ttl``.
        drift_threshold: Population stability index above which a feature's new distribution,
            compared with the previous materialization, blocks publishing.
    """

    name: str
    entity: str = "person_id"
    features: tuple[Feature, ...]
    ttl: datetime.timedelta
    owner: str
    source: str
    requires_consent: Literal["analytics", "marketing"] = "analytics"
    description: str = ""
    population_days: int = 28
    drift_threshold: float = 0.25

    def __post_init__(self) -> None:
        subject = f"feature view {self.name!r}"
        if not self.name or not self.name.strip():
            raise FeatureStoreError("feature view", "the name is empty", "Give the view a non-empty name.")
        if not isinstance(self.features, tuple):
            raise FeatureStoreError(
                subject,
                f"features is a {type(self.features).__name__}, not a tuple",
                "Pass features as a tuple, e.g. features=(Feature(...), ...), so the view stays immutable.",
            )
        if not self.features:
            raise FeatureStoreError(subject, "it declares no features", "Declare at least one Feature.")
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise FeatureStoreError(
                subject,
                f"feature names are repeated: {', '.join(duplicates)}",
                "Give every feature of a view a unique name.",
            )
        if self.entity in names or "valid_from" in names:
            raise FeatureStoreError(
                subject,
                f"a feature is named like the entity column {self.entity!r} or 'valid_from'",
                "Rename the feature; those columns are reserved for the history's key.",
            )
        if not isinstance(self.ttl, datetime.timedelta) or self.ttl <= datetime.timedelta(0):
            raise FeatureStoreError(
                subject,
                f"ttl must be a positive timedelta, got {self.ttl!r}",
                "Set ttl to how long a value stays valid, e.g. datetime.timedelta(days=7).",
            )
        if not self.owner or not self.owner.strip():
            raise FeatureStoreError(
                subject, "owner is empty", "Name the team or person answerable for the view."
            )
        if not self.source or not self.source.strip():
            raise FeatureStoreError(
                subject, "source is empty", "Name the table the view's history comes from."
            )
        if self.requires_consent not in _CONSENTS:
            raise FeatureStoreError(
                subject,
                f"requires_consent {self.requires_consent!r} is not a consent purpose",
                f"Use one of {', '.join(_CONSENTS)}.",
            )

        if not isinstance(self.population_days, int) or self.population_days < 1:
            raise FeatureStoreError(
                subject,
                f"population_days must be a positive whole number, got {self.population_days!r}",
                "Set it to the activity window that decides who gets a row, e.g. 28.",
            )
        if not isinstance(self.drift_threshold, (int, float)) or not self.drift_threshold > 0:
            raise FeatureStoreError(
                subject,
                f"drift_threshold must be a positive number, got {self.drift_threshold!r}",
                "Use a population stability index such as 0.25 (significant shift).",
            )

    @property
    def longest_window_days(self) -> int:
        """The longest trailing window of any feature (``population_days`` when none is windowed)."""
        windows = [f.aggregation.window_days for f in self.features if f.aggregation and f.aggregation.window_days]
        return max([self.population_days, *windows])

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the view's features, in declaration order."""
        return tuple(f.name for f in self.features)

"""The feature store: feature views declared in one place, materialized nightly, read point-in-time correctly.

* ``catalog.VIEWS`` — every view (``user_features``, ``user_sessions``, ``user_marketing``) with its
  features, aggregations, owner, TTL and required consent;
* ``FeatureStore`` — ``materialize(day)`` (rollups → values → GX and drift gates → Delta history
  and online store), ``get_historical_features`` (point-in-time training rows) and
  ``get_online_features`` (latest values, TTL-expired ones null);
* ``get_historical_features`` — the point-in-time join on in-memory frames;
* ``OnlineStore`` — the SQLite online store; ``drift_report`` — the population-stability gate.
"""

from growth_loops.features.catalog import VIEWS, get_view
from growth_loops.features.drift import (
    DriftReport,
    FeatureDrift,
    drift_report,
    population_stability_index,
)
from growth_loops.features.errors import FeatureStoreError
from growth_loops.features.online import OnlineStore
from growth_loops.features.pit import VALID_FROM, get_historical_features
from growth_loops.features.store import FeatureStore, Materialization
from growth_loops.features.views import Feature, FeatureDtype, FeatureView

__all__ = [
    "VALID_FROM",
    "VIEWS",
    "DriftReport",
    "Feature",
    "FeatureDrift",
    "FeatureDtype",
    "FeatureStore",
    "FeatureStoreError",
    "FeatureView",
    "Materialization",
    "OnlineStore",
    "drift_report",
    "get_historical_features",
    "get_view",
    "population_stability_index",
]

"""The feature store: feature views declared in one place, read point-in-time correctly.

* ``FeatureView`` / ``Feature`` — what a view serves, for which entity, how long values stay fresh;
* ``get_historical_features`` — for each (entity, moment) the values valid then, never later ones.
"""

from growth_loops.features.errors import FeatureStoreError
from growth_loops.features.pit import VALID_FROM, get_historical_features
from growth_loops.features.views import Feature, FeatureDtype, FeatureView

__all__ = [
    "VALID_FROM",
    "Feature",
    "FeatureDtype",
    "FeatureStoreError",
    "FeatureView",
    "get_historical_features",
]

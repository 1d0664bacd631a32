"""Freshness SLAs of every asset, declared in one place."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

__all__ = ["SLAS", "freshness"]

# layer -> (warn after, fail after) without a new materialization
SLAS: dict[str, tuple[timedelta, timedelta]] = {
    "landing": (timedelta(hours=2), timedelta(hours=4)),
    "bronze": (timedelta(hours=2), timedelta(hours=3)),
    "silver": (timedelta(hours=2), timedelta(hours=3)),
    "warehouse": (timedelta(hours=26), timedelta(hours=30)),  # staging/intermediate: nightly
    "marts": (timedelta(hours=26), timedelta(hours=30)),  # nightly build, plus slack
    "features": (timedelta(hours=28), timedelta(hours=32)),  # nightly, after the marts; under the 2-day TTL
    "loops": (timedelta(hours=28), timedelta(hours=32)),  # nightly, after the features
    "reports": (timedelta(hours=28), timedelta(hours=32)),  # nightly, after the loops
}


def freshness(layer: str) -> dg.FreshnessPolicy:
    warn, fail = SLAS[layer]
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)

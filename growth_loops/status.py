"""The growth side of ``growthlake status``: each feature view's last day, each loop's state and the
policy versions waiting for a person."""

from __future__ import annotations

from typing import Any

import polars as pl

from lake import delta_io
from lake.paths import LakePaths

__all__ = ["growth_status"]


def growth_status(paths: LakePaths) -> dict[str, Any]:
    """Returns ``features`` (view, last published day, online rows) and ``loops`` (the newest run of
    each loop: day, status, approval state, policy version; ``pending`` approval requests)."""
    from growth_loops.features import FeatureStore
    from growth_loops.loops import approvals
    from growth_loops.loops.runtime import LOOP_RUNS

    store = FeatureStore(paths)
    try:
        features = []
        for view in store.views:
            days = store.published_days(view)
            features.append({"view": view.name, "last_day": days[-1] if days else None,
                             "online_rows": store.online.row_count(view)})
    finally:
        store.close()
    runs = pl.from_arrow(delta_io.read(paths.table("decisions", "loop_runs"), LOOP_RUNS))
    assert isinstance(runs, pl.DataFrame)
    latest = (runs.sort("day", "decided_at").unique("loop", keep="last").sort("loop")
              .select("loop", "day", "status", "approval_state", "policy_version").to_dicts())
    pending = approvals.list_approvals(paths, only="pending")
    return {"features": features, "loops": latest,
            "pending": pending.select("loop", "version", "requested_at").to_dicts() if pending.height else []}

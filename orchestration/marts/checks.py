"""Checks on the marts beyond dbt's tests: the OEC within its learned band (Great Expectations)."""

from datetime import UTC, datetime

import dagster as dg

from expectations import validate_daily_oec
from orchestration.resources import LakeResource

__all__ = ["oec_within_learned_band"]

OEC = dg.AssetKey(["marts", "fct_daily_oec"])


@dg.asset_check(asset=OEC, blocking=True, name="gx_fct_daily_oec",
                description="GX suite fct_daily_oec on the newest complete day: revenue >= 0, rates in [0, 1], "
                            "daily active users within median +/- 4 robust sd of the previous 28 days.")
def oec_within_learned_band(lake: LakeResource) -> dg.AssetCheckResult:
    paths = lake.paths()
    outcome, figures = validate_daily_oec(paths.warehouse, as_of=datetime.now(UTC).date())
    if outcome is None:
        return dg.AssetCheckResult(passed=True, metadata=figures)
    # data_dates scopes the verdict to the day judged (orchestration/trust.py): a failure makes that
    # day untrusted, not every day.
    return dg.AssetCheckResult(passed=outcome.success, severity=dg.AssetCheckSeverity.ERROR,
                               description=outcome.summary(),
                               metadata={**{k: v for k, v in figures.items() if v is not None},
                                         "data_dates": [figures["date"]]})

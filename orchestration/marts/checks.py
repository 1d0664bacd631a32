"""Checks on the marts beyond dbt's tests: the OEC within its learned band (Great Expectations).

The suite runs on the private copy of the warehouse before it is swapped in
(``lake.warehouse.staged_warehouse``, write-audit-publish); this check only reports that verdict.
"""

import dagster as dg

from lake.warehouse import OEC_CHECK, read_warehouse_verdict
from orchestration.resources import LakeResource

__all__ = ["oec_within_learned_band"]

OEC = dg.AssetKey(["marts", "fct_daily_oec"])


@dg.asset_check(asset=OEC, blocking=True, name=OEC_CHECK,
                description="GX suite fct_daily_oec on the newest complete day, run on the warehouse build before it "
                            "was swapped in: revenue >= 0, rates in [0, 1], daily active users within median +/- 4 "
                            "robust sd of the previous 28 days.")
def oec_within_learned_band(lake: LakeResource) -> dg.AssetCheckResult:
    verdict = read_warehouse_verdict(lake.paths())
    check = next((c for c in (verdict or {}).get("checks", []) if c["name"] == OEC_CHECK), None)
    if verdict is None or check is None:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                   description="no audit verdict recorded for the current warehouse build: rebuild "
                                               "the warehouse (the audit runs on the copy before the swap)")
    # data_dates (in the metadata) scopes the verdict to the day judged (orchestration/trust.py).
    return dg.AssetCheckResult(passed=bool(check["passed"]), severity=dg.AssetCheckSeverity.ERROR,
                               description=check["summary"],
                               metadata={**{k: v for k, v in check["metadata"].items() if v is not None},
                                         "build_id": verdict["build_id"], "published": verdict["published"]})

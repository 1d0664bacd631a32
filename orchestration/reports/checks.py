"""The board report's check: the file is there, not empty, and its figures are the marts'."""

import dagster as dg

from growth_loops.report import default_report_path, oec_figures, read_report_figures, reconcile_figures
from growth_loops.report.data import read_oec
from orchestration.reports.assets import REPORT_KEY
from orchestration.resources import LakeResource

__all__ = ["board_reconciles_with_marts"]


@dg.asset_check(asset=REPORT_KEY, blocking=True, name="board_reconciles_with_marts",
                description="The report file exists, is not empty, and the OEC figures it states (days, last day, "
                            "total revenue, active users on the last day) equal marts.fct_daily_oec's.")
def board_reconciles_with_marts(lake: LakeResource) -> dg.AssetCheckResult:
    paths = lake.paths()
    path = default_report_path(paths)
    if not path.is_file() or path.stat().st_size == 0:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                   description=f"the report {path} is missing or empty: rebuild it (nightly_report).",
                                   metadata={"path": dg.MetadataValue.path(str(path))})
    stated = read_report_figures(path.read_text(encoding="utf-8"))
    if stated is None:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                   description=f"the report {path} carries no figures block: it was not written by "
                                               "this release's renderer, or was cut short. Rebuild it.",
                                   metadata={"path": dg.MetadataValue.path(str(path))})
    oec, _ = read_oec(paths)
    marts = oec_figures(oec)
    problems = reconcile_figures(stated, marts)
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
        description=("the report's figures equal marts.fct_daily_oec's" if not problems else
                     "the report does not reconcile with marts.fct_daily_oec (" + "; ".join(problems)
                     + "): the warehouse changed after it was built, or it was built from another lake. Rebuild it."),
        metadata={"path": dg.MetadataValue.path(str(path)), "bytes": path.stat().st_size,
                  **{k: v for k, v in marts.items() if v is not None}, "mismatches": len(problems)})

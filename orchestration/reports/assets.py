"""``["reports", "board"]``: one HTML file answering the board's questions from the lake."""

import dagster as dg

from growth_loops.report import build_report
from orchestration.automation import after_gates
from orchestration.freshness import freshness
from orchestration.loops.assets import LOOP_KEYS
from orchestration.resources import LakeResource
from orchestration.trust import TRUST_HOOKS

__all__ = ["REPORT_KEY", "board_report", "nightly_report_job", "nightly_report_schedule"]

REPORT_KEY = dg.AssetKey(["reports", "board"])


@dg.asset(
    key=REPORT_KEY,
    deps=[*LOOP_KEYS.values(), dg.AssetKey(["marts", "fct_daily_oec"])],
    group_name="reports",
    kinds={"html", "matplotlib"},
    freshness_policy=freshness("reports"),
    # new decisions or marts, their gates passed (built with the marts; after the loops' own run)
    automation_condition=after_gates(wait_for=dg.AssetSelection.groups("loops")),
    description="OEC trends, loop lifts with intervals, guardrails and rollbacks, data trust, quarantine "
                "reasons, and the playbook's four board questions answered from the data.",
)
def board_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    path = build_report(lake.paths())
    context.log.info(f"report written to {path}")
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)),
                                          "bytes": path.stat().st_size})


nightly_report_job = dg.define_asset_job("nightly_report", selection=[REPORT_KEY], executor_def=dg.in_process_executor,
                                         hooks=TRUST_HOOKS,
                                         description="Rebuild the board report from the lake.")
nightly_report_schedule = dg.ScheduleDefinition(name="nightly_board_report", job=nightly_report_job,
                                                cron_schedule="0 4 * * *", execution_timezone="UTC")

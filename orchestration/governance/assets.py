"""``["governance", "erasures"]``: process the pending right-to-erasure requests.

Ingestion turns every ``consent_updated`` event that withdraws analytics consent into a pending
request (``delta/governance/erasure_requests``); this asset erases each request's person from the
whole lake (``lake.erasure.erase_person``), which also deletes the request. Its metadata and logs
hold counts and erasure ids only — never a person's id.
"""

from datetime import timedelta

import dagster as dg

from lake.erasure import pending_requests, process_pending_requests
from orchestration.resources import LakeResource

__all__ = ["ERASURES_KEY", "process_erasures"]

ERASURES_KEY = dg.AssetKey(["governance", "erasures"])


@dg.asset(
    key=ERASURES_KEY,
    deps=[dg.AssetKey(["bronze", "events"])],  # requests are captured by ingestion
    group_name="governance",
    # Nightly from 02:00 UTC, once bronze got new data since (new requests are captured by ingestion). Not
    # held by bronze's gates: an erasure is owed whatever the state of the data, and publishes nothing.
    automation_condition=dg.AutomationCondition.on_cron("0 2 * * *", "UTC"),
    kinds={"delta", "python"},
    # Nightly; a request must not wait more than a couple of days (GDPR: "without undue delay").
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=30), warn_window=timedelta(hours=26)),
    description="Erase the person of every pending erasure request (consent revoked) from landing, Delta tables "
    "and their history, files, the online store and the warehouse; record each erasure without "
    "personal data.",
)
def process_erasures(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    paths = lake.paths()
    pending = len(pending_requests(paths))
    reports = process_pending_requests(paths, masker=lake.masker(), plan=lake.plan())
    for r in reports:
        context.log.info(
            f"erasure {r.erasure_id}: {r.rows_removed} Delta rows removed, {r.rows_redacted} redacted, "
            f"{r.landing_lines_removed} landed lines blanked, {len(r.history_purged)} table histories purged"
        )
    return dg.MaterializeResult(
        metadata={
            "requests_processed": pending,
            "erasure_ids": dg.MetadataValue.json([r.erasure_id for r in reports]),
            "rows_removed": sum(r.rows_removed for r in reports),
            "rows_redacted": sum(r.rows_redacted for r in reports),
            "landing_lines_removed": sum(r.landing_lines_removed for r in reports),
            "warehouse_rows_removed": sum(sum(r.warehouse.values()) for r in reports),
            "erasures_table": dg.MetadataValue.path(paths.erasures),
        }
    )

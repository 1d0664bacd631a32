"""The erasure asset's check: what it promised to remove is gone."""

import dagster as dg

from lake.erasure import erased_rows_remaining, pending_requests
from orchestration.governance.assets import ERASURES_KEY
from orchestration.resources import LakeResource

__all__ = ["erased_subjects_absent"]


@dg.asset_check(asset=ERASURES_KEY, blocking=True, name="erased_subjects_absent",
                description="No row of an erased subject (matched through the keyed hash the erasure record keeps) "
                            "received before its erasure completed remains in bronze/events, silver/events or "
                            "silver/identity_map, and no request captured before the run is still pending.")
def erased_subjects_absent(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    paths = lake.paths()
    remaining = erased_rows_remaining(paths, lake.masker())
    # A request captured while the erasure ran is the next run's; one captured before it should be gone.
    record = context.instance.get_latest_materialization_event(ERASURES_KEY)
    run = None if record is None else context.instance.get_run_record_by_id(record.run_id)
    started = None if run is None else run.start_time
    stale = [r for r in pending_requests(paths)
             if started is not None and r["captured_at"].timestamp() < started]
    problems = [f"{n} row(s) of erased subjects in {table}" for table, n in sorted(remaining.items())]
    if stale:
        problems.append(f"{len(stale)} erasure request(s) captured before the last erasure run still pending")
    return dg.AssetCheckResult(
        passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
        description=("every erased subject is absent from bronze and silver" if not problems else
                     "; ".join(problems) + ": a writer re-introduced them after the erasure (a replay or backfill "
                     "from a source the erasure did not rewrite?). Erase them again: `growthlake erase`."),
        metadata={"rows_remaining": sum(remaining.values()), "stale_requests": len(stale),
                  **{f"rows_remaining/{t}": n for t, n in remaining.items()}},
    )

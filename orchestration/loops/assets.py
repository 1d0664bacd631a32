"""Loop decisions as Dagster assets: ``["loops", <loop>, "decisions"]``, partitioned by day.

Each depends on the feature views its loop reads; the decision run itself re-checks that those
views were published (not held) for the day, so a failed feature gate stops actuation even when
the features ran in an earlier run. A blocking check per loop reconciles the day's decisions with
the audit log: every decision is accountable, or nothing downstream runs.
"""

import datetime

import dagster as dg
import polars as pl

from growth_loops.loops import audit
from growth_loops.loops.catalog import default_loops
from growth_loops.loops.runtime import DECISIONS, LoopSettings, run_decisions
from lake import delta_io
from orchestration.features.assets import FEATURE_KEYS, daily
from orchestration.freshness import freshness
from orchestration.resources import LakeResource

__all__ = ["LOOP_KEYS", "LoopDecisionConfig", "decide_loops"]

_LOOPS = default_loops()
LOOP_KEYS = {loop.spec.name: dg.AssetKey(["loops", loop.spec.name, "decisions"]) for loop in _LOOPS}


def _spec(loop) -> dg.AssetSpec:
    spec = loop.spec
    return dg.AssetSpec(
        LOOP_KEYS[spec.name],
        description=f"{spec.description} ({spec.policy} → {spec.actuation} `{spec.target}`; "
                    f"approval: {spec.approval.mode})",
        deps=[FEATURE_KEYS[view] for view in spec.views],
        group_name="loops",
        kinds={"delta", "growthbook"},
        owners=[f"team:{spec.owner}"],
        freshness_policy=freshness("loops"),
        partitions_def=daily,
        metadata={"policy": spec.policy, "actuation": spec.actuation, "target": spec.target,
                  "variants": list(spec.variants), "version": loop.version,
                  "guardrails": [f"{g.metric}: -{g.max_relative_drop:.0%} over {g.window_days}d at {g.confidence:.0%}"
                                 for g in spec.guardrails]},
    )


class LoopDecisionConfig(dg.Config):
    """Launchpad settings of a decision run (the defaults are production's)."""

    holdout_share: float | None = None  # share of people in the global holdout (default: LoopSettings')
    now: str | None = None  # when the decisions are made, RFC 3339 UTC (default: the wall clock); a replay sets it


@dg.multi_asset(
    name="decide_loops",
    specs=[_spec(loop) for loop in _LOOPS],
    check_specs=[dg.AssetCheckSpec(f"audited_{loop.spec.name}", asset=LOOP_KEYS[loop.spec.name], blocking=True,
                                   partitions_def=daily,
                                   description="Every decision of the day has its audit-log record.")
                 for loop in _LOOPS],
    partitions_def=daily,
)
def decide_loops(context: dg.AssetExecutionContext, lake: LakeResource, config: LoopDecisionConfig):
    """Run every loop for the day: gates, approvals, policy, guardrails, then the outbox."""
    paths = lake.paths()
    day = datetime.date.fromisoformat(context.partition_key)
    settings = LoopSettings() if config.holdout_share is None else LoopSettings(holdout_share=config.holdout_share)
    now = datetime.datetime.fromisoformat(config.now) if config.now else None
    runs = run_decisions(paths, day, settings=settings, now=now)
    logged = audit.read_audit(paths, kind="action").filter(pl.col("decision_day") == day)
    for run in runs:
        key = LOOP_KEYS[run.loop]
        context.log.info(f"{run.loop} {day}: {run.status} ({run.policy_version}, {run.approval_state}) {run.note}")
        yield dg.MaterializeResult(asset_key=key, metadata={
            "status": run.status, "policy_version": run.policy_version, "approval_state": run.approval_state,
            "decisions": len(run.outcome.decisions), "messages": len(run.outcome.messages) if run.actuated else 0,
            "guardrails": [g.reason for g in run.outcome.guardrails], "note": run.note})
        table = pl.from_arrow(delta_io.read(paths.loop_decisions(run.loop), DECISIONS, partitions=[("day", "=", day)]))
        assert isinstance(table, pl.DataFrame)
        mine = logged.filter(pl.col("loop") == run.loop)
        missing = set(table["decision_id"].to_list()) - set(mine["decision_id"].to_list())
        yield dg.AssetCheckResult(asset_key=key, check_name=f"audited_{run.loop}", passed=not missing,
                                  description=f"{table.height} decisions, {len(missing)} without an audit record",
                                  metadata={"decisions": table.height, "unaudited": len(missing)})

"""Loop decisions as Dagster assets: ``["loops", <loop>, "decisions"]``, partitioned by day.

Each depends on the feature views its loop reads; the decision run itself re-checks that those
views were published (not held) for the day, so a failed feature gate stops actuation even when
the features ran in an earlier run. A blocking check per loop reports the audit ``run_decisions``
made of the staged decisions before anything was published (the GX suite ``loop_decisions``, and
every decision's audit record): a failed audit publishes neither the flags document, nor the
outbox, nor the decisions, and nothing downstream runs.
"""

import datetime

import dagster as dg

from growth_loops.loops.catalog import default_loops
from growth_loops.loops.runtime import LoopSettings, run_decisions
from orchestration.automation import daily_after_gates
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
        automation_condition=daily_after_gates(),  # the day's features published (their gates passed)
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
                                   description="The day's staged decisions pass the GX suite loop_decisions and "
                                               "each has its audit-log record, before anything is published.")
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
    failed = sorted(r.loop for r in runs if r.audit is not None and not r.audit.passed)
    for run in runs:
        key = LOOP_KEYS[run.loop]
        context.log.info(f"{run.loop} {day}: {run.status} ({run.policy_version}, {run.approval_state}) {run.note}")
        yield dg.MaterializeResult(asset_key=key, metadata={
            "status": run.status, "policy_version": run.policy_version, "approval_state": run.approval_state,
            "decisions": len(run.outcome.decisions), "messages": len(run.outcome.messages) if run.actuated else 0,
            "guardrails": [g.reason for g in run.outcome.guardrails], "note": run.note, "published": run.published})
        # The verdict run_decisions computed on the staged decisions, before publishing: only reported here.
        checked = run.audit
        passed = checked is not None and checked.passed and run.published
        description = (checked.summary or "" if checked is not None else "not audited") + (
            "" if run.published else f"; nothing of the day published (audit failed: {', '.join(failed)})")
        yield dg.AssetCheckResult(asset_key=key, check_name=f"audited_{run.loop}", passed=passed,
                                  description=description, metadata=dict(checked.metadata) if checked else {})

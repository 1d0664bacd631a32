"""``growthlake loops …``, ``approvals …``, ``audit`` and ``experiments plan``: the human side of the loops —
list, approve, reject policy versions; stop and resume a live loop; plan an experiment's sample."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from orchestration.cli_settings import PII, PLAN, READ, UPDATE, WRITE

__all__ = ["add_parser", "decide_days", "experiment_lines"]


def _paths(args: argparse.Namespace):
    from lake.paths import LakePaths

    return LakePaths.from_root(args.root)


def _actor(args: argparse.Namespace) -> str:
    return args.actor or args.settings.actor or getpass.getuser()


def _cmd_list(args: argparse.Namespace) -> int:
    from growth_loops.loops import approvals

    table = approvals.list_approvals(_paths(args), loop=args.loop, only=None if args.all else ("pending", "canary"))
    if table.is_empty():
        print("no pending approvals" if not args.all else "no approval requests yet")
        return 0
    print(f"{'loop':<22}{'version':<22}{'state':<18}{'requested':<22}{'last actor':<24}reason / evidence")
    for r in table.iter_rows(named=True):
        note = r["reason"] if r["state"] not in ("pending", "canary") else r["evidence"]
        state = r["state"] + (" (stopped)" if r["stopped"] else "")
        print(f"{r['loop']:<22}{r['version']:<22}{state:<18}{r['requested_at']:%Y-%m-%d %H:%M}Z{'':<5}"
              f"{r['actor']:<23} {note[:80]}")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    from growth_loops.loops import control

    result = control.stop(_paths(args), args.loop, actor=_actor(args), reason=args.reason)
    flag = (f"flag {result.flag} serves control to everyone" if result.flag else "no flag")
    print(f"stopped {result.loop}: {flag}; {result.messages} pending message(s) withheld. "
          f"Resume with `growthlake loops resume {result.loop}`.")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from growth_loops.loops import control

    result = control.resume(_paths(args), args.loop, actor=_actor(args), reason=args.reason or "")
    flag = (f"flag {result.flag} {'restored' if result.flag_changed else 'left to the next decision run'}"
            if result.flag else "no flag")
    print(f"resumed {result.loop}: {flag}; {result.messages} withheld message(s) released")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from growth_loops.experiments import plan_sample_size

    plan = plan_sample_size(baseline_mean=args.baseline, baseline_sd=args.sd, relative_mde=args.mde,
                            alpha=args.alpha, power=args.power, treatment_share=args.treatment_share,
                            sequential=args.sequential, daily_units=args.daily_units)
    kind = "always-valid (guardrails, peeking every night)" if plan.sequential else "fixed horizon (one look)"
    print(f"to detect a relative change of {plan.relative_mde:.1%} with {plan.power:.0%} power at alpha "
          f"{plan.alpha:g}, {kind}:")
    print(f"  control    {plan.units_per_control:>12,}")
    print(f"  treatment  {plan.units_per_treatment:>12,}")
    print(f"  total      {plan.total_units:>12,}" + (f"   ~{plan.days} day(s) at {args.daily_units:,} a day"
                                                     if plan.days is not None else ""))
    return 0


def _cmd_verdict(args: argparse.Namespace) -> int:
    from growth_loops.loops import approvals

    paths = _paths(args)
    if args.approvals_verb == "approve":
        approvals.approve(paths, args.loop, args.version, actor=_actor(args), reason=args.reason or "")
        print(f"approved {args.loop} {args.version}: it is actuated from the next decision run")
    else:
        approvals.reject(paths, args.loop, args.version, actor=_actor(args), reason=args.reason or "")
        print(f"rejected {args.loop} {args.version}: the loop keeps its last approved policy (or control)")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from growth_loops.loops import audit

    log = audit.read_audit(_paths(args), loop=args.loop)
    if args.kind:
        log = log.filter(log["kind"] == args.kind)
    for r in log.tail(args.last).iter_rows(named=True):
        print(json.dumps(r, default=str))
    return 0


def decide_days(defs, instance, days, *, log_level: str = "WARNING", config: dict | None = None) -> list[str]:
    """Run the nightly loop decisions for each day through Dagster; return the days that failed.

    ``config`` is the ``decide_loops`` op config (:class:`orchestration.loops.assets.LoopDecisionConfig`).
    """
    import time

    job = defs.resolve_job_def("nightly_loops")
    failed = []
    run_config: dict = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if config:
        run_config["ops"] = {"decide_loops": {"config": config}}
    for day in days:
        t0 = time.perf_counter()
        res = job.execute_in_process(partition_key=day.isoformat(), instance=instance, raise_on_error=False,
                                     run_config=run_config)
        statuses = {e.asset_key.path[1]: e.materialization.metadata["status"].value
                    for e in res.get_asset_materialization_events()}
        bad = [c.check_name for c in res.get_asset_check_evaluations() if not c.passed]
        if not res.success or bad:
            failed.append(day.isoformat())
        print(f"loops {day}  " + "  ".join(f"{k} {v}" for k, v in statuses.items())
              + f"  {'FAILED: ' + ', '.join(bad or ['run']) if bad or not res.success else 'audited'}"
              f"  {time.perf_counter() - t0:.2f}s", flush=True)
    return failed


def _cmd_decide(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from lake.paths import LakePaths
    from orchestration.cli import _instance
    from orchestration.definitions import build_definitions
    from orchestration.resources import LakeResource

    last = args.to or args.day
    days = [args.day + timedelta(days=i) for i in range((last - args.day).days + 1)]
    paths = LakePaths.from_root(args.root)
    defs = build_definitions(lake=LakeResource(root=paths.root, tracking_plan=args.tracking_plan))
    return 1 if decide_days(defs, _instance(args.settings), days) else 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    """The closed loop on a fresh root: simulated product, whole chain, every loop, then a summary."""
    import json
    from datetime import UTC, date, datetime, timedelta

    import polars as pl

    from growth_loops.loops import approvals as approvals_mod
    from growth_loops.loops.runtime import EXPERIMENT_RESULTS, LoopSettings
    from lake import delta_io
    from lake.ledger import read_ledger
    from orchestration.cli import _instance, _print_summary
    from orchestration.closed_loop import decisions_frame, run_closed_loop
    from simulation.closed_loop import ClosedLoopConfig, PaywallEffect, truth_summary

    paths = _paths(args)
    start = args.start or (datetime.now(UTC).date() - timedelta(days=args.days))
    cfg = ClosedLoopConfig(arrivals_per_day=args.arrivals, trial_days=7, extra_sessions_per_day=0.4,
                           actions_per_session=1.0,
                           paywall_variants={"control": PaywallEffect(1.0, 1.0),
                                             "discount_popup": PaywallEffect(1.05, 0.5)})

    def on_day(day, runs):
        line = "  ".join(f"{r.loop} {r.status}" for r in runs)
        print(f"{day}  {line}", flush=True)
        if args.approve:
            for r in runs:
                if r.status == "awaiting_approval":
                    approvals_mod.approve(paths, r.loop, r.policy_version, actor=_actor(args),
                                          reason="--approve on growthlake loops simulate")
                    print(f"           approved {r.loop} {r.policy_version} (as {_actor(args)})")

    result = run_closed_loop(paths, start=start, days=args.days, seed=args.seed, config=cfg,
                             settings=LoopSettings(holdout_share=args.holdout), on_day=on_day,
                             instance=_instance(args.settings), tracking_plan=args.tracking_plan, warehouse=True)
    summary = truth_summary(paths.root)
    results = pl.from_arrow(delta_io.read(paths.table("experiments", "results"), EXPERIMENT_RESULTS))
    assert isinstance(results, pl.DataFrame)
    last = results.filter(pl.col("day") == results["day"].max()) if results.height else results
    print("\nexperiments on the last day (95% intervals):")
    for line in experiment_lines(last.to_dicts()):
        print(line)
    print(f"truth: trial nudge +{cfg.trial_nudge_lift:.2f} conversion; discount popup "
          f"{cfg.true_effects()['paywall']['discount_popup']['relative_revenue_per_exposed']:+.1%} revenue per exposed")
    rolled = decisions_frame(result).filter(pl.col("status") == "rolled_back")
    first_rollback = rolled["day"].min()
    assert first_rollback is None or isinstance(first_rollback, date)
    print(f"rollbacks: {', '.join(sorted(set(rolled['loop']))) or 'none'}"
          + (f" (first on {first_rollback})" if rolled.height else ""))
    print(f"onboarding: {json.dumps(summary.get('onboarding', {}), default=str)[:300]}")
    print(f"messages sent: {result.messages_sent}; audit: `growthlake audit`; approvals: `growthlake approvals list`")
    _print_summary(read_ledger(paths).to_pylist())
    if result.failed:
        print(f"\n{len(result.failed)} step(s) failed a gate or did not reconcile: {', '.join(result.failed[:10])}"
              f"{' …' if len(result.failed) > 10 else ''}\nInspect with `growthlake status`.", file=sys.stderr)
        return 1
    return 0


def experiment_lines(rows: list[dict]) -> list[str]:
    """One aligned line per experiment metric: name, metric, absolute estimate, 95% interval, n per arm.
    Columns are as wide as their longest value, so long names never run into the next column."""
    import json

    if not rows:
        return ["  (no experiment results)"]
    name_w = max(len(r["experiment"]) for r in rows) + 2
    metric_w = max(len(r["metric"]) for r in rows) + 2
    lines = []
    for r in rows:
        rec = json.loads(r["record"])
        lines.append(f"  {r['experiment']:<{name_w}}{r['metric']:<{metric_w}}{rec['abs_estimate']:+.4f}  "
                     f"[{rec['abs_ci_low']:+.4f}, {rec['abs_ci_high']:+.4f}]  n={r['n_control']}/{r['n_treatment']}")
    return lines


def add_parser(sub, common: argparse.ArgumentParser) -> None:
    import datetime as _dt

    def _day(value: str):
        try:
            return _dt.date.fromisoformat(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a date like 2026-11-02") from None

    lp = sub.add_parser("loops", help="growth loops: decide for days, or run the closed loop on simulated users")
    lsub = lp.add_subparsers(dest="loops_verb", required=True)
    d = lsub.add_parser("decide", parents=[common], help="run every loop's decisions for days, through Dagster")
    d.add_argument("--day", type=_day, required=True)
    d.add_argument("--to", type=_day)
    d.set_defaults(fn=_cmd_decide, needs=UPDATE)
    si = lsub.add_parser("simulate", parents=[common], help="closed loop: simulated product + whole chain + loops")
    si.add_argument("--days", type=int, default=25)
    si.add_argument("--arrivals", type=int, default=1500,
                    help="new visitors per weekday (weekend_factor times as many on Saturdays and Sundays)")
    si.add_argument("--seed", type=int, default=5)
    si.add_argument("--start", type=_day, help="first day (default: today minus --days)")
    si.add_argument("--holdout", type=float, default=0.1, help="global holdout share")
    si.add_argument("--approve", action="store_true", help="approve pending versions each morning (as --actor)")
    si.add_argument("--actor")
    si.set_defaults(fn=_cmd_simulate, needs=WRITE | PII | PLAN)

    for verb, helptext in (("stop", "kill switch: control for every unit of a loop now, its pending messages "
                                    "withheld (whatever its approval state)"),
                           ("resume", "reverse `loops stop`: restore the loop's flag, release its withheld "
                                      "messages")):
        k = lsub.add_parser(verb, parents=[common], help=helptext)
        k.add_argument("loop")
        k.add_argument("--reason", required=verb == "stop", help="why (recorded in the audit log)")
        k.add_argument("--actor", help="who (default: $GROWTHLAKE_ACTOR or the login name)")
        k.set_defaults(fn=_cmd_stop if verb == "stop" else _cmd_resume, needs=UPDATE)

    ex = sub.add_parser("experiments", help="experiment tools: plan a sample size")
    exsub = ex.add_subparsers(dest="experiments_verb", required=True)
    pl_ = exsub.add_parser("plan", help="units needed to detect a relative change (as GrowthBook's power calculator)")
    pl_.add_argument("--baseline", type=float, required=True, help="control mean (a rate for a conversion metric)")
    pl_.add_argument("--sd", type=float, help="per-unit standard deviation (omit for a conversion rate)")
    pl_.add_argument("--mde", type=float, required=True, help="relative change to detect, e.g. 0.05 for 5%%")
    pl_.add_argument("--alpha", type=float, default=0.05)
    pl_.add_argument("--power", type=float, default=0.8)
    pl_.add_argument("--treatment-share", type=float, default=0.5)
    pl_.add_argument("--sequential", action="store_true",
                     help="plan for the always-valid test (safe to look every night, as the guardrails do)")
    pl_.add_argument("--daily-units", type=int, help="units entering per day, to say how many days")
    pl_.set_defaults(fn=_cmd_plan, needs=frozenset())

    a = sub.add_parser("approvals", help="policy versions waiting for a human: list, approve, reject")
    asub = a.add_subparsers(dest="approvals_verb", required=True)
    ls = asub.add_parser("list", parents=[common],
                         help="versions a person may approve: pending and canary (--all: every state)")
    ls.add_argument("--loop")
    ls.add_argument("--all", action="store_true")
    ls.set_defaults(fn=_cmd_list, needs=READ)
    for verb, helptext in (("approve", "let a pending (or canary) version act fully from the next decision run"),
                           ("reject", "refuse a pending or canary version (a reason is required); "
                                      "to stop a live loop: `loops stop`")):
        v = asub.add_parser(verb, parents=[common], help=helptext)
        v.add_argument("loop")
        v.add_argument("version")
        v.add_argument("--reason", required=verb == "reject")
        v.add_argument("--actor", help="who decides (default: $GROWTHLAKE_ACTOR or the login name)")
        v.set_defaults(fn=_cmd_verdict, needs=UPDATE)
    au = sub.add_parser("audit", parents=[common], help="the decision audit log, as JSON lines")
    au.add_argument("--loop")
    au.add_argument("--kind", choices=["action", "rollback", "approval", "promotion", "skipped", "stop", "resume",
                                       "cap"])
    au.add_argument("--last", type=int, default=50)
    au.set_defaults(fn=_cmd_show, needs=READ)

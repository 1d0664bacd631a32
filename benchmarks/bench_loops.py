"""Benchmark the closed loop: seconds per simulated day and per stage of the whole chain.

    python benchmarks/bench_loops.py [--days 25] [--arrivals 1500] [--keep DIR]

Each simulated day runs: the product simulator (reads the outbox, lands the day's events) →
ingestion of its 24 landing hours → silver → the day's features (gated) → every loop's decisions.
Prints the per-stage time of the first, middle and last days, the mean, the total, events per
day, and peak RSS. In process, library calls (the Dagster wiring adds ~0.5 s per job run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import secrets
import shutil
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=25)
    ap.add_argument("--arrivals", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--keep", help="directory to keep the lake in (default: a temporary one, removed)")
    args = ap.parse_args()
    os.environ.setdefault("GROWTHLAKE_PII_KEY", secrets.token_hex(32))  # a throwaway key for a throwaway lake

    from growth_loops.loops import approvals
    from lake.paths import LakePaths
    from orchestration.closed_loop import run_closed_loop
    from simulation.closed_loop import ClosedLoopConfig, read_truth

    root = args.keep or tempfile.mkdtemp(prefix="growthlake-bench-loops-")
    paths = LakePaths.from_root(root)
    cfg = ClosedLoopConfig(arrivals_per_day=args.arrivals, trial_days=7, extra_sessions_per_day=0.4,
                           actions_per_session=1.0)

    def approve(day, runs):
        for r in runs:
            if r.status == "awaiting_approval":
                approvals.approve(paths, r.loop, r.policy_version, actor="bench")

    t0 = time.perf_counter()
    try:
        result = run_closed_loop(paths, start=dt.date(2026, 3, 2), days=args.days, seed=args.seed, config=cfg,
                                 on_day=approve)
        total = time.perf_counter() - t0
        truth = read_truth(paths.root)
        events = {d: int(truth.filter(truth["day"] == d)["events_today"].sum()) for d in result.days}
        stages = list(next(iter(result.seconds.values())))
        print(f"closed loop: {args.days} days x {args.arrivals} arrivals/day, {sum(events.values()):,} events "
              f"in {total:.1f}s ({total / args.days:.2f} s/day)")
        print(f"{'day':<12}{'events':>9}" + "".join(f"{s:>10}" for s in stages) + f"{'total':>9}")
        picks = sorted({result.days[0], result.days[len(result.days) // 2], result.days[-1]})
        for d in picks:
            sec = result.seconds[d]
            print(f"{d.isoformat():<12}{events[d]:>9,}" + "".join(f"{sec[s]:>10.2f}" for s in stages)
                  + f"{sum(sec.values()):>9.2f}")
        mean = {s: sum(v[s] for v in result.seconds.values()) / len(result.seconds) for s in stages}
        print(f"{'mean':<12}{sum(events.values()) // len(events):>9,}" + "".join(f"{mean[s]:>10.2f}" for s in stages)
              + f"{sum(mean.values()):>9.2f}")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
              f"messages sent {result.messages_sent}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Dagster's SQLite event log against growthlake's pooled one (orchestration/event_log.py).

    python benchmarks/bench_event_log.py [--days 4] [--arrivals 300] [--events 300]

Two figures per storage, each storage in its own process on its own fresh ``DAGSTER_HOME``:

* **per stored event**: ``--events`` runless asset materializations reported to the instance
  (each is a run-shard write and an index-shard write, as a run's materialization is);
* **the demo's days**: ``--days`` days of ``make demo``'s closed loop (``--arrivals`` new visitors
  a day; every day one ranged hourly run, the day's features and decisions through Dagster), the
  chain's seconds per day and the events the instance stored.

``dagster`` is Dagster's default storage (an empty ``dagster.yaml``); ``pooled`` is the
``dagster.yaml`` that growthlake writes (:func:`orchestration.event_log.ensure_instance_config`).
The ratio of the two is measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START = date(2026, 6, 1)


def _child(storage: str, base: Path, days: int, arrivals: int, events: int) -> dict:
    """One storage, measured in this process (called with ``--child``)."""
    import dagster as dg

    from orchestration.event_log import ensure_instance_config

    home = base / f"home-{storage}"
    home.mkdir(parents=True)
    if storage == "pooled":
        ensure_instance_config(home)
    else:
        (home / "dagster.yaml").write_text("")  # Dagster's default SQLite storage
    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()

    for i in range(10):  # warm: schema, first connections
        instance.report_runless_asset_event(dg.AssetMaterialization(["warm", str(i)], partition=f"p{i}"))
    t0 = time.perf_counter()
    for i in range(events):
        instance.report_runless_asset_event(dg.AssetMaterialization(
            ["bench", str(i % 6)], partition=f"2026-06-01-{i % 24:02d}:00", metadata={"rows": i}))
    per_event_ms = (time.perf_counter() - t0) / events * 1000

    from lake.paths import LakePaths
    from orchestration.closed_loop import run_closed_loop
    from simulation.closed_loop import ClosedLoopConfig

    os.environ.setdefault("GROWTHLAKE_PII_KEY", secrets.token_hex(32))  # a throwaway key for a throwaway lake
    paths = LakePaths.from_root(str(base / f"lake-{storage}"))
    t1 = time.perf_counter()
    config = ClosedLoopConfig(arrivals_per_day=arrivals, trial_days=7, extra_sessions_per_day=0.4,
                              actions_per_session=1.0)  # make demo's
    result = run_closed_loop(paths, start=START, days=days, seed=42, config=config, instance=instance)
    total = time.perf_counter() - t1
    stored = sum(len(instance.all_logs(r.run_id)) for r in instance.get_runs())
    chain = [s["chain"] for s in result.seconds.values()]
    return {"storage": storage, "per_event_ms": round(per_event_ms, 2), "days": days,
            "chain_s_per_day": round(statistics.mean(chain), 2), "closed_loop_s": round(total, 1),
            "runs": len(instance.get_runs()), "events_stored": stored, "failed": result.failed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=4)
    ap.add_argument("--arrivals", type=int, default=300)
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, Path(args.base), args.days, args.arrivals, args.events)))
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-event-log-") as tmp:
        for storage in ("dagster", "pooled"):
            out = subprocess.run([sys.executable, __file__, "--child", storage, "--base", tmp, "--days", str(args.days),
                                  "--arrivals", str(args.arrivals), "--events", str(args.events)],
                                 check=True, capture_output=True, text=True, cwd=ROOT)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base, pooled = rows
    print(f"{'storage':<8} {'ms/event':>9} {'chain s/day':>12} {'closed loop s':>14} {'runs':>5} {'events':>7}")
    for r in rows:
        print(f"{r['storage']:<8} {r['per_event_ms']:>9} {r['chain_s_per_day']:>12} {r['closed_loop_s']:>14} "
              f"{r['runs']:>5} {r['events_stored']:>7}" + (f"  failed: {r['failed']}" if r["failed"] else ""))
    print(f"pooled vs dagster: {base['per_event_ms'] / pooled['per_event_ms']:.2f}x less per stored event, "
          f"{base['chain_s_per_day'] / pooled['chain_s_per_day']:.2f}x less chain time per day "
          f"({args.days} days from {START} to {START + timedelta(days=args.days - 1)}, {args.arrivals} arrivals a day)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

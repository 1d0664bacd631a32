"""Benchmark the hourly run with 7 and with 60 days of history.

    python benchmarks/bench_hourly.py [--lines-per-hour 2000] [--history 7 60] [--measure 3] [--keep DIR]

For each history length H, one lake gets H days of simulated traffic at the same hourly rate
(``--lines-per-hour``, calibrated by a pilot run) ingested hour by hour
(``lake.ingest.ingest_partition`` per landing hour, then one silver build, which takes the backlog
in bounded steps: the lake an hourly schedule leaves behind, built without Dagster's per-run
overhead). Then a probe day — the same simulated visitors for every H, so the hours compared
carry the same lines — lands after it, and its hours are run exactly as the schedule runs them —
a new process per hour running the ``hourly_ingestion`` Dagster job (ingestion, its gates, the
ledger check, the volume and drift gates, silver and its gates, the trust hooks):
``growthlake run --from HOUR --to HOUR --no-warehouse`` — first two hours to warm the lake's
lazily built state (profiles of the drift gates' baseline), then ``--measure`` afternoon hours
(13:00 on) whose median is reported: the job's own time (printed by the CLI) and the whole
process (with Python and Dagster start-up).

Targets (issue 7): an hourly run <= 20 s, and no more than 1.25x slower with 60 days than with 7.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PILOT_VISITORS = 2_000
START = date(2026, 6, 1)


def visitors_for(base: Path, days: int, lines_per_hour: int) -> int:
    """Visitors whose ``days`` of traffic land about ``lines_per_hour`` lines an hour.

    Simulated visitors come back for the whole window, so the lines per visitor grow with the
    window (about 50 over a week, several times that over 60 days): a small pilot run of the same
    window measures it, so that every history length has the same hourly traffic.
    """
    from simulation import simulate

    pilot_root = base / f"pilot-{days}d"
    pilot = simulate(str(pilot_root), users=PILOT_VISITORS, days=days, seed=3, start=START)
    shutil.rmtree(pilot_root, ignore_errors=True)
    per_visitor = pilot.lines_written / PILOT_VISITORS
    return max(round(lines_per_hour * 24 * days / per_visitor), 100)


def build_lake(base: Path, days: int, lines_per_hour: int) -> tuple[Path, list[str]]:
    """Simulate ``days`` days of history, ingest them hour by hour and build silver; then land the
    probe day after it (the same simulated traffic for every history length, only its dates
    differ) without ingesting it. Returns the root and the probe day's hour keys."""
    from lake.contracts import load_plan
    from lake.ingest import ingest_partition, list_landing_partitions
    from lake.paths import LakePaths
    from lake.pii import PiiMasker
    from lake.silver import build_silver
    from simulation import simulate

    root = base / f"history-{days}d"
    t0 = time.perf_counter()
    s = simulate(str(root), users=visitors_for(base, days, lines_per_hour), days=days, seed=3, start=START)
    paths = LakePaths.from_root(root)
    history = list_landing_partitions(paths)
    plan, masker = load_plan(), PiiMasker(os.environ["GROWTHLAKE_PII_KEY"].encode())
    for key in history:
        ingest_partition(paths, key, plan=plan, masker=masker)
    build_silver(paths)
    probe_day = START + timedelta(days=days)
    simulate(str(root), users=visitors_for(base, 1, lines_per_hour), days=1, seed=4, start=probe_day)
    probe = [k for k in list_landing_partitions(paths) if k.startswith(probe_day.isoformat())]
    print(f"{days} days: {s.lines_written:,} lines of history ({s.lines_written / len(history):,.0f} an hour), "
          f"{len(history)} hours ingested and silver built in {time.perf_counter() - t0:.0f}s", flush=True)
    return root, probe


def run_hour(root: Path, key: str) -> tuple[float, float, int]:
    """One scheduled hourly run in a new process: (job seconds, process seconds, lines landed)."""
    env = {**os.environ, "GROWTHLAKE_ROOT": str(root), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "orchestration.cli", "run", "--from", key, "--to", key,
                           "--no-warehouse", "--no-features", "--no-loops"],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    hour = next((x for x in proc.stdout.splitlines() if x.startswith("[")), "")
    run = next((x for x in proc.stdout.splitlines() if x.strip().startswith("run 1/1")), "")
    landed = re.search(r"landed\s+(\d+)", hour)
    seconds = re.search(r"\sin ([\d.]+)s$", run)
    if proc.returncode != 0 or landed is None or seconds is None:
        raise SystemExit(f"hourly run of {key} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return float(seconds.group(1)), wall, int(landed.group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines-per-hour", type=int, default=2000)
    ap.add_argument("--history", type=int, nargs="+", default=[7, 60])
    ap.add_argument("--measure", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("GROWTHLAKE_PII_KEY", secrets.token_hex(32))
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-hourly-"))
    base.mkdir(parents=True, exist_ok=True)
    results: dict[int, tuple[float, float]] = {}
    try:
        for days in args.history:
            root, hours = build_lake(base, days, args.lines_per_hour)
            # Warm-up: the probe day's first two hours; measured: the afternoon (its busiest hours).
            runs = [run_hour(root, key) for key in [*hours[:2], *hours[13:13 + args.measure]]]
            measured = runs[2:]
            job = statistics.median(r[0] for r in measured)
            wall = statistics.median(r[1] for r in measured)
            lines = statistics.median(r[2] for r in measured)
            results[days] = (job, wall)
            print(f"{days:>3} days of history: hourly job {job:.2f}s, whole process {wall:.1f}s "
                  f"(median of {len(measured)} hours of ~{lines:,.0f} lines; warm-up runs "
                  f"{', '.join(f'{r[0]:.2f}s' for r in runs[:2])})", flush=True)
        if len(results) >= 2:
            lo, hi = min(results), max(results)
            print(f"ratio {hi} days / {lo} days: job {results[hi][0] / results[lo][0]:.2f}x, "
                  f"process {results[hi][1] / results[lo][1]:.2f}x (target <= 1.25x; hourly run <= 20 s)")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the product simulator: ~1M landed lines (20k visitors x 7 days) into a temp dir.

    python benchmarks/bench_simulator.py [--users 20000] [--days 7] [--seed 0] [--keep DIR]

Prints wall time, lines/s and clean events/s, and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from simulation import simulate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 2))
    ap.add_argument("--keep", type=Path, default=None, help="simulate into this folder and keep it")
    args = ap.parse_args(argv)

    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-sim-"))
    try:
        t0 = time.perf_counter()
        s = simulate(root, users=args.users, days=args.days, seed=args.seed, start=args.start)
        wall = time.perf_counter() - t0
        landed = sum(p.stat().st_size for p in s.landing_dir.rglob("*.jsonl"))
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"users={s.users} days={s.days} seed={s.seed}")
    print(f"lines written      {s.lines_written:>12,}  ({s.lines_written / s.users:.1f} per visitor)")
    print(f"clean events       {s.events_written:>12,}")
    print(f"faults             {sum(s.faults.values()):>12,}  no_analytics_consent {s.no_analytics_consent:,}")
    print(f"files / bytes      {s.files_written:>12,}  {landed / 1e6:,.1f} MB")
    print(f"wall time          {wall:>12.2f} s")
    print(f"lines/s            {s.lines_written / wall:>12,.0f}")
    print(f"clean events/s     {s.events_written / wall:>12,.0f}")
    print(f"peak RSS           {peak_mb:>12.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

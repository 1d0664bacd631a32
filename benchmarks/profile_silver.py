"""cProfile of one silver build over a simulated week (BENCHMARKS.md: "Why the 10M week is ...").

    python benchmarks/profile_silver.py [--users 200000] [--top 40]

Simulates ``--users`` visitors over 7 days from 2026-11-02 (200,000: ~10M landed lines, as
``bench_chain.py --events 10M``), ingests the week in one pass (``ingest_range``), then builds silver
over it under the profiler and prints the build's summary and the top functions by cumulative
and by own time. The lake is a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import secrets
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    os.environ.setdefault("GROWTHLAKE_PII_KEY", secrets.token_hex(32))  # a throwaway key for a throwaway lake

    from lake.contracts import load_plan
    from lake.ingest import ingest_range, list_landing_partitions
    from lake.paths import LakePaths
    from lake.pii import PiiMasker
    from lake.silver import build_silver
    from simulation import simulate

    root = tempfile.mkdtemp(prefix="growthlake-profile-silver-")
    try:
        sim = simulate(root, users=args.users, days=7, seed=1, start=date(2026, 11, 2))
        paths = LakePaths.from_root(root)
        keys = list_landing_partitions(paths)
        t0 = time.perf_counter()
        ingest_range(paths, keys, plan=load_plan(), masker=PiiMasker(os.environ["GROWTHLAKE_PII_KEY"].encode()))
        print(f"{sim.lines_written:,} lines, {len(keys)} hours ingested in {time.perf_counter() - t0:.1f}s", flush=True)
        profiler = cProfile.Profile()
        t0 = time.perf_counter()
        profiler.enable()
        result = build_silver(paths, landing_partitions=keys)
        profiler.disable()
        print(f"silver {time.perf_counter() - t0:.1f}s under the profiler: {result.summary()}")
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
            print(out.getvalue())
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

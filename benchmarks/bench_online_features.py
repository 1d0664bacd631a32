"""Benchmark online feature lookups: random batches of ids against one view in a SQLite store.

    python benchmarks/bench_online_features.py [--entities 200000] [--lookups 2000] [--batch 100]
                                               [--views 1] [--check] [--keep DIR]

Writes a view of 8 features (int64, float64, string, bool; ~10% nulls) for ``--entities``
entities into a fresh store, then times ``get_online_features`` for ``--lookups`` batches of
``--batch`` random ids (about 1 in 10 unknown), after a warm-up of as many batches, in the same
process — what a long-lived serving worker sees. ``--views N`` reads N such views per call.

Prints the write time and rate, the file size, and lookup latency percentiles in ms. With
``--check``, exits 1 if p99 exceeds 5 ms (the serving target for 100 ids over 200k entities).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from growth_loops.features.online import OnlineStore  # noqa: E402
from growth_loops.features.views import Feature, FeatureView  # noqa: E402

P99_TARGET_MS = 5.0
NOW = datetime(2026, 11, 9, 12, 0, tzinfo=UTC)


def _view(i: int) -> FeatureView:
    s = "" if i == 0 else f"_v{i}"
    return FeatureView(
        name=f"bench_engagement{s}",
        features=(
            Feature(f"sessions_7d{s}", "int64", "Sessions in the last 7 days."),
            Feature(f"events_28d{s}", "int64", "Events in the last 28 days."),
            Feature(f"spend{s}", "float64", "Spend to date."),
            Feature(f"conversion_rate{s}", "float64", "Share of sessions converting."),
            Feature(f"tier{s}", "string", "Plan tier."),
            Feature(f"country{s}", "string", "Country code."),
            Feature(f"is_trial{s}", "bool", "In a trial."),
            Feature(f"opted_in{s}", "bool", "Marketing opt-in."),
        ),
        ttl=timedelta(days=7),
        owner="growth",
        source="marts.engagement",
    )


def _rows(view: FeatureView, n: int, seed: int) -> pl.DataFrame:
    rng = random.Random(seed)

    def maybe(v: object) -> object:
        return None if rng.random() < 0.1 else v

    cols = {
        "person_id": [f"p{i:09d}" for i in range(n)],
        # 2% are older than the TTL at NOW, so some lookups exercise expiry.
        "valid_from": [NOW - timedelta(days=8 if rng.random() < 0.02 else 1, seconds=rng.randrange(3600))
                       for _ in range(n)],
    }
    makers = [
        lambda: rng.randrange(50), lambda: rng.randrange(5000), lambda: round(rng.random() * 500, 2),
        lambda: rng.random(), lambda: rng.choice(["free", "pro", "team", "enterprise"]),
        lambda: rng.choice(["DE", "FR", "US", "BR", "JP", "IN"]), lambda: rng.random() < 0.3,
        lambda: rng.random() < 0.6,
    ]
    for f, make in zip(view.features, makers, strict=True):
        cols[f.name] = [maybe(make()) for _ in range(n)]
    dtypes = {"int64": pl.Int64, "float64": pl.Float64, "string": pl.String, "bool": pl.Boolean}
    return pl.DataFrame(
        cols,
        schema={"person_id": pl.String, "valid_from": pl.Datetime("us", "UTC"),
                **{f.name: dtypes[f.dtype] for f in view.features}},
    )


def _pct(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entities", type=int, default=200_000)
    ap.add_argument("--lookups", type=int, default=2_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--views", type=int, default=1, help="views read per lookup (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help=f"exit 1 if p99 > {P99_TARGET_MS:g} ms")
    ap.add_argument("--keep", type=Path, default=None, help="directory to keep the store in")
    args = ap.parse_args(argv)

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-online-"))
    path = base / "online.sqlite"
    try:
        views = [_view(i) for i in range(args.views)]
        with OnlineStore(path) as store:
            for i, view in enumerate(views):
                rows = _rows(view, args.entities, args.seed + i)
                t0 = time.perf_counter()
                written = store.write(view, rows)
                wall = time.perf_counter() - t0
                print(f"write {view.name}: {written:,} entities x {len(view.features)} features in "
                      f"{wall:.2f}s  {written / wall:,.0f} rows/s")
            size = sum(p.stat().st_size for p in base.glob("online.sqlite*"))
            print(f"file: {size / 2**20:,.1f} MB (with WAL)")

        rng = random.Random(args.seed)
        known = args.entities

        def batch() -> list[str]:
            return [f"p{rng.randrange(known):09d}" if rng.random() < 0.9 else f"unknown{rng.randrange(10**6)}"
                    for _ in range(args.batch)]

        batches = [batch() for _ in range(2 * args.lookups)]
        with OnlineStore(path) as store:  # a fresh serving process: new connection, cold plan cache
            for ids in batches[:args.lookups]:  # warm-up
                store.get_online_features(ids, views, now=NOW)
            times: list[float] = []
            served = 0
            for ids in batches[args.lookups:]:
                t0 = time.perf_counter()
                frame = store.get_online_features(ids, views, now=NOW)
                times.append((time.perf_counter() - t0) * 1000)
                served += frame.height - frame[views[0].features[0].name].null_count()
        ms = sorted(times)
        p99 = _pct(ms, 0.99)
        print(f"lookup {args.batch} ids x {args.views} view(s), {len(ms):,} calls: "
              f"p50 {_pct(ms, 0.50):.2f} ms  p95 {_pct(ms, 0.95):.2f} ms  p99 {p99:.2f} ms  "
              f"max {ms[-1]:.2f} ms  mean {statistics.fmean(ms):.2f} ms  "
              f"({served / (len(ms) * args.batch):.0%} of first feature non-null)")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    if args.check and p99 > P99_TARGET_MS:
        print(f"FAIL: p99 {p99:.2f} ms > {P99_TARGET_MS:g} ms", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

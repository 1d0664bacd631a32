"""Benchmark landing -> bronze ingestion on ~1M simulated events (20k visitors x 7 days).

    python benchmarks/bench_ingestion.py [--users 20000] [--days 7] [--hourly] [--normalizer columnar per_line]
                                         [--keep DIR]

Two shapes of the same 1M landed lines:

* ``batch`` (default): every batch file in one landing hour, ingested into a fresh lake — the
  throughput of the engine itself (parse, validate, pseudonymize, dedup, GX gate, Delta commit),
  on all cores. Run twice: ``cold`` pays this process's one-time start-up (importing Great
  Expectations, ~2 s; starting the worker pool), ``warm`` is a second fresh lake in the same
  process — what a long-lived worker sustains.
* ``--hourly``: also ingest them as they landed, 168 hourly partitions one after another, as the
  hourly schedule would; per-partition costs (Delta log, small files, gates) show up here.

Prints events/s (landed lines per wall-clock second) and the peak RSS of this process (the two
normalizing worker processes each hold about half a batch's rows while they work).

Both normalizers (``GROWTHLAKE_NORMALIZER``: ``columnar``, the default, and ``per_line``, the reference)
run on the same batch, alternately, side by side: normalization alone (``normalize_files``: the worker
pool, decoding, contract, masking, consent; twice each) and the whole ingestion (warm).
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from lake.contracts import load_plan  # noqa: E402
from lake.ingest import (  # noqa: E402
    ingest_partition,
    list_landing_files,
    list_landing_partitions,
    parallel,  # noqa: E402
)
from lake.ingest.parallel import normalize_files  # noqa: E402
from lake.paths import LakePaths  # noqa: E402
from lake.pii import PiiMasker  # noqa: E402
from lake.settings import Settings  # noqa: E402
from simulation import simulate  # noqa: E402


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def _one_batch_copy(src: LakePaths, dst: LakePaths) -> str:
    """Hard-link every landed file into the last landing hour of a fresh lake."""
    keys = list_landing_partitions(src)
    last = keys[-1]
    day, hour = last[:10], last[11:13]
    target = Path(dst.landing_events) / f"date={day}" / f"hour={hour}"
    target.mkdir(parents=True)
    for i, f in enumerate(sorted(Path(src.landing_events).rglob("*.jsonl"))):
        os.link(f, target / f"{i:04d}-{f.name}")
    return last


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hourly", action="store_true", help="also ingest hour by hour (slower)")
    ap.add_argument("--normalizer", nargs="+", choices=["columnar", "per_line"], default=["per_line", "columnar"])
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args(argv)
    kinds = list(dict.fromkeys(args.normalizer))

    os.environ.setdefault("GROWTHLAKE_PII_KEY", secrets.token_hex(32))  # a throwaway key for the run
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        sim = LakePaths.from_root(base / "hourly")
        t0 = time.perf_counter()
        s = simulate(sim.root, users=args.users, days=args.days, seed=args.seed, start=date(2026, 11, 2))
        print(f"simulated {s.lines_written:,} lines in {time.perf_counter() - t0:.1f}s")
        plan, masker = load_plan(), PiiMasker(os.environ["GROWTHLAKE_PII_KEY"].encode())

        def lake(name: str, kind: str) -> LakePaths:
            return LakePaths.from_root(base / name, settings=Settings.from_env(root=base / name, normalizer=kind))

        # normalization alone, both normalizers alternately on one batch (the worker pool for both)
        norm = lake("normalize", kinds[0])
        key = _one_batch_copy(sim, norm)
        files = list_landing_files(norm, key)
        seconds: dict[str, list[float]] = {k: [] for k in kinds}
        for rep in (1, 2):
            for kind in kinds:
                paths = lake("normalize", kind)
                t0 = time.perf_counter()
                batch = normalize_files(paths, key, files, plan=plan, masker=masker)
                seconds[kind].append(time.perf_counter() - t0)
                print(f"normalize, {kind:<8} #{rep}: {batch.lines_landed:,} lines in {seconds[kind][-1]:.2f}s  "
                      f"{batch.lines_landed / seconds[kind][-1]:,.0f} lines/s  (bronze {batch.bronze.num_rows:,}, "
                      f"quarantine {batch.quarantine.num_rows:,}, per-line fallback {batch.python_fallback_lines:,})",
                      flush=True)
        lines = batch.lines_landed
        print("normalize, best of 2: " + "  |  ".join(
            f"{k} {lines / min(v):,.0f} lines/s" for k, v in seconds.items()), flush=True)
        # CPU time of the same work in this process (no worker pool): less sensitive than wall time to
        # other load on the machine; the columnar side counts its polars threads too
        cpu: dict[str, list[float]] = {k: [] for k in kinds}
        parallel.PARALLEL_MIN_BYTES = 1 << 62
        try:
            for _ in range(3):
                for kind in kinds:
                    c0 = time.process_time()
                    normalize_files(lake("normalize", kind), key, files, plan=plan, masker=masker)
                    cpu[kind].append(time.process_time() - c0)
        finally:
            parallel.PARALLEL_MIN_BYTES = None
        print("normalize in-process, CPU per line (best of 3): " + "  |  ".join(
            f"{k} {min(v) / lines * 1e6:.2f} us ({lines / min(v):,.0f} lines per CPU-second)" for k, v in cpu.items())
            + f"  ->  {min(cpu[kinds[0]]) / min(cpu[kinds[-1]]):.2f}x", flush=True)

        # the whole ingestion: a cold run first (imports, worker start-up), then each normalizer warm
        walls: dict[str, float] = {}
        for label, kind in (("cold", kinds[-1]), *(("warm", k) for k in kinds)):
            one = lake(f"batch-{label}-{kind}", kind)
            key = _one_batch_copy(sim, one)
            t0 = time.perf_counter()
            r = ingest_partition(one, key, plan=plan, masker=masker)
            wall = time.perf_counter() - t0
            led = r.ledger
            assert led.reconciled, led.summary()
            if label == "warm":
                walls[kind] = wall
            print(f"batch {label}, {kind}: {led.lines_landed:,} lines -> bronze {led.bronze_rows:,}, quarantined "
                  f"{led.quarantined:,}, consent {led.consent_dropped:,}, duplicates {led.duplicates_dropped:,}, "
                  f"per-line fallback {r.python_fallback_lines:,}")
            print(f"batch {label}, {kind}: {wall:.2f}s  {led.lines_landed / wall:,.0f} events/s  "
                  f"peak RSS {_rss_mb(resource.RUSAGE_SELF):,.0f} MB", flush=True)
        print("batch warm: " + "  |  ".join(f"{k} {lines / w:,.0f} events/s ({w:.2f}s)" for k, w in walls.items()))

        if args.hourly:
            keys = list_landing_partitions(sim)
            t0 = time.perf_counter()
            lines = sum(ingest_partition(sim, k, plan=plan, masker=masker).ledger.lines_landed for k in keys)
            wall = time.perf_counter() - t0
            print(f"hourly: {len(keys)} partitions, {lines:,} lines in {wall:.1f}s  {lines / wall:,.0f} events/s  "
                  f"{wall / len(keys):.2f}s per partition  peak RSS {_rss_mb(resource.RUSAGE_SELF):,.0f} MB")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the whole chain (landing -> bronze -> silver -> dbt marts) against bare DuckDB.

    python benchmarks/bench_chain.py [--events 100k 1M] [--with-10m] [--mode hourly backfill ranged run]
                                     [--normalizer columnar per_line] [--keep DIR]

For each size, ~50 landed lines per simulated visitor over 7 days are written to a landing zone
(not timed), then separate processes run on the same files:

* ``growthlake``, in four modes, each on fresh tables — the library calls the Dagster assets make,
  without Dagster's own overhead (see ``bench_hourly.py`` for that):

  - ``hourly``: every landing hour through ingestion (contract, PII masking, consent, dedup,
    Great Expectations gate, Delta commit, ledger) and the incremental silver build after it
    (identity stitching, sessions), as the hourly job runs them;
  - ``backfill``: every landing hour through ingestion, then one silver build over the whole
    backlog, which processes it in bounded steps of bronze commits (``GROWTHLAKE_SILVER_STEP_ROWS``);
  - ``ranged``: the week as a ranged run takes it (issue 18) — the hours through ingestion in one
    pass (``lake.ingest.ingest_range``: one read, one classification, one validation per suite,
    one commit per table, in passes bounded by ``GROWTHLAKE_INGEST_STEP_BYTES``), then one silver
    build over them;

  then one dbt build of the warehouse (staging, marts, tests);
  - ``run``: ``growthlake run --from --to`` over the week, as users run it — Dagster included
    (a persistent instance, ranged runs of the hourly job), then the dbt build, the week's features
    and the loops' decisions (issue 18's benchmark: all through ``growthlake run``).
* ``bare DuckDB``: ``benchmarks/baseline.sql`` — parse, consent, dedup, keyed IP hash, stitching,
  the OEC per day — in one DuckDB connection, writing a Parquet file and tables.

Prints per stage the wall time, events/s (landed lines per second) and the peak RSS of the
process tree (sampled from /proc every 0.2 s: the process, its ingestion workers, dbt), then the
ratio growthlake / bare DuckDB. The issue's targets: ratio <= 2 at 10M events, ingestion
>= 150k events/s, peak RSS <= 6 GB. ``--normalizer columnar per_line`` runs each growthlake mode
once per normalizer (``GROWTHLAKE_NORMALIZER``, on fresh tables) and prints their ingestion side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

SIZES = {"100k": 100_000, "1M": 1_000_000, "10M": 10_000_000}
LINES_PER_VISITOR = 50  # the simulator's default mix lands ~50 lines per visitor


# -- measuring ---------------------------------------------------------------------------------

def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (Linux /proc), in MB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        p = int(entry)
        children.setdefault(int(fields[1]), []).append(p)
        rss[p] = int(fields[21])  # pages
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def _run_measured(args: list[str], env: dict[str, str]) -> tuple[dict, float]:
    """Run this script in a child process; return its JSON result and the tree's peak RSS (MB)."""
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, env=env, text=True)
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1]), peak[0]


# -- the two sides (each in its own process) -----------------------------------------------------

def _chain(root: str, mode: str = "hourly") -> dict:
    from lake.contracts import load_plan
    from lake.ingest import ingest_partition, ingest_range, list_landing_partitions
    from lake.paths import LakePaths
    from lake.pii import PiiMasker
    from lake.silver import build_silver
    from lake.warehouse import build_warehouse

    paths = LakePaths.from_root(root)
    plan, masker = load_plan(), PiiMasker(os.environ["GROWTHLAKE_PII_KEY"].encode())
    stages: dict[str, float] = {}
    keys = list_landing_partitions(paths)
    lines = bronze = 0
    stages["ingest"] = stages["silver"] = 0.0
    started = time.perf_counter()
    if mode == "run":
        return _growthlake_run(paths, keys)
    if mode == "ranged":
        from lake.ingest.pipeline import range_passes

        passes = len(range_passes(paths, keys))
        t0 = time.perf_counter()
        results = ingest_range(paths, keys, plan=plan, masker=masker)
        unreconciled = [r.ledger.summary() for r in results if not r.ledger.reconciled]
        assert not unreconciled, unreconciled
        lines, bronze = sum(r.ledger.lines_landed for r in results), sum(r.ledger.bronze_rows for r in results)
        t1 = time.perf_counter()
        build_silver(paths, landing_partitions=keys)
        stages["ingest"], stages["silver"] = t1 - t0, time.perf_counter() - t1
        print(f"  {len(keys)} hours in {passes} pass(es): ingest {t1 - t0:.1f}s, silver "
              f"{time.perf_counter() - t1:.1f}s", file=sys.stderr, flush=True)
    for i, key in enumerate(keys if mode != "ranged" else [], 1):
        # hourly: as the hourly job does, the hour into bronze, then silver brought up to date;
        # backfill: every hour into bronze, then one silver build over the backlog (in bounded steps).
        t0 = time.perf_counter()
        led = ingest_partition(paths, key, plan=plan, masker=masker).ledger
        assert led.reconciled, led.summary()
        lines, bronze = lines + led.lines_landed, bronze + led.bronze_rows
        t1 = time.perf_counter()
        if mode == "hourly" or i == len(keys):
            build_silver(paths, landing_partitions=[key])
        stages["ingest"] += t1 - t0
        stages["silver"] += time.perf_counter() - t1
        if i % 24 == 0:  # progress of long runs, on stderr (stdout carries the result)
            print(f"  {i}/{len(keys)} hours, {time.perf_counter() - started:.0f}s; this hour: ingest {t1 - t0:.2f}s, "
                  f"silver {time.perf_counter() - t1:.2f}s", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    build = build_warehouse(paths)
    stages["marts"] = time.perf_counter() - t0
    events, oec_days = _warehouse_counts(build.path)
    return {"stages": stages, "lines": lines, "bronze": bronze, "events": events, "oec_days": oec_days,
            "partitions": len(keys), "lake_mb": _lake_mb(root)}


def _growthlake_run(paths, keys: list[str]) -> dict:
    """``growthlake run --from FIRST --to LAST`` as a user runs it: Dagster (a persistent instance under
    the root, as ``DAGSTER_HOME`` in the Makefile), ranged runs of the hourly job, the dbt build, the
    week's features and the loops' decisions. Its output goes to stderr (stdout carries the result)."""
    from lake.ledger import read_ledger
    from orchestration.cli import main as cli

    os.environ["DAGSTER_HOME"] = os.path.join(paths.root, "_dagster_home")
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)  # the CLI's lines and dbt's, printed by this process or its children
    try:
        t0 = time.perf_counter()
        code = cli(["run", "--from", keys[0], "--to", keys[-1]])
        seconds = time.perf_counter() - t0
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    ledger = read_ledger(paths, keys).to_pylist()
    assert all(r["lines_landed"] == r["bronze_rows"] + r["quarantined"] + r["consent_dropped"]
               + r["duplicates_dropped"] for r in ledger)
    events, oec_days = _warehouse_counts(paths.warehouse) if os.path.exists(paths.warehouse) else (0, 0)
    return {"stages": {"run": seconds}, "exit_code": code,
            "lines": sum(r["lines_landed"] for r in ledger), "bronze": sum(r["bronze_rows"] for r in ledger),
            "events": events, "oec_days": oec_days,
            "partitions": len(keys), "lake_mb": _lake_mb(paths.root)}


def _warehouse_counts(path: str) -> tuple[int, int]:
    """Events in the warehouse's staging and days in its OEC mart."""
    import duckdb

    con = duckdb.connect(path, read_only=True)
    try:
        events = con.execute("select count(*) from staging.stg_silver__events").fetchone()[0]
        oec_days = con.execute("select count(*) from marts.fct_daily_oec").fetchone()[0]
    finally:
        con.close()
    return events, oec_days


def _lake_mb(root: str) -> dict[str, float]:
    """Data files of the Delta tables: referenced by the current versions, and all on disk."""
    from deltalake import DeltaTable

    live = disk = 0
    for log in Path(root, "delta").rglob("_delta_log"):
        table = log.parent
        live += sum(DeltaTable(str(table)).get_add_actions(flatten=True).column("size_bytes").to_pylist())
        disk += sum(f.stat().st_size for f in table.rglob("*.parquet"))
    return {"live": round(live / 2**20, 1), "on_disk": round(disk / 2**20, 1)}


def _baseline(root: str, out: str) -> dict:
    import duckdb

    sql = (ROOT / "benchmarks" / "baseline.sql").read_text()
    landing = f"{root}/landing/events/*/*/*.jsonl"
    sql = sql.replace("{landing}", landing).replace("{key}", os.environ["GROWTHLAKE_PII_KEY"]).replace("{out}", out)
    con = duckdb.connect(f"{out}/baseline.duckdb")
    try:
        t0 = time.perf_counter()
        for statement in (s.strip() for s in sql.split(";")):
            if statement and not all(line.startswith("--") for line in statement.splitlines()):
                con.execute(statement)
        con.execute("checkpoint")
        seconds = time.perf_counter() - t0
        lines = con.execute("select count(*) from raw").fetchone()[0]
        events = con.execute("select count(*) from events").fetchone()[0]
        oec_days = con.execute("select count(*) from fct_daily_oec").fetchone()[0]
    finally:
        con.close()
    return {"stages": {"all": seconds}, "lines": lines, "events": events, "oec_days": oec_days}


# -- the driver --------------------------------------------------------------------------------

def bench(size: str, base: Path, env: dict[str, str], modes: list[str], normalizers: list[str]) -> None:
    from simulation import simulate

    target = SIZES[size]
    root = base / size
    t0 = time.perf_counter()
    s = simulate(str(root), users=max(target // LINES_PER_VISITOR, 100), days=7, seed=1, start=date(2026, 11, 2))
    landed = s.lines_written
    print(f"\n== {size}: {landed:,} landed lines in {s.files_written} files (simulated in "
          f"{time.perf_counter() - t0:.0f}s)", flush=True)

    out = base / f"{size}-baseline"
    out.mkdir()
    base_result, base_rss = _run_measured(["--_baseline", str(root), str(out)], env)
    base_s = base_result["stages"]["all"]
    print(f"bare DuckDB   {base_s:7.1f}s  {landed / base_s:>10,.0f} events/s  peak RSS {base_rss:6,.0f} MB  "
          f"({base_result['events']:,} events kept, {base_result['oec_days']} OEC days)", flush=True)

    ingest: dict[tuple[str, str], float] = {}
    for mode, normalizer in ((m, n) for m in modes for n in normalizers):
        if (mode, normalizer) != (modes[0], normalizers[0]):  # each run starts from the landing zone, no tables
            for stale in (p for p in root.iterdir() if p.name not in ("landing", "simulator")):
                if stale.is_dir():
                    shutil.rmtree(stale)
                elif stale.exists():
                    stale.unlink()
        chain, chain_rss = _run_measured(["--_chain", str(root), mode], {**env, "GROWTHLAKE_ROOT": str(root),
                                                                          "GROWTHLAKE_NORMALIZER": normalizer})
        total = sum(chain["stages"].values())
        ingest[mode, normalizer] = chain["stages"].get("ingest", 0.0)
        print(f"-- growthlake, {mode}, {normalizer} normalizer: " + {
            "hourly": "each hour ingested, then silver brought up to date (the hourly job)",
            "backfill": "every hour ingested, then one silver build",
            "ranged": "the week ingested in one pass, then one silver build (a ranged run)",
            "run": "`growthlake run --from --to` as users run it: Dagster, ranged hourly runs, the dbt build, "
                   "features and loops"}[mode])
        for stage, seconds in chain["stages"].items():
            print(f"growthlake {stage:<7}{seconds:6.1f}s  {landed / seconds:>10,.0f} events/s", flush=True)
        print(f"growthlake    {total:7.1f}s  {landed / total:>10,.0f} events/s  peak RSS {chain_rss:6,.0f} MB  "
              f"({chain['events']:,} events in silver, {chain['oec_days']} OEC days, {chain['partitions']} hours)")
        print(f"growthlake Delta files: {chain['lake_mb']['live']:,.0f} MB referenced by the current versions, "
              f"{chain['lake_mb']['on_disk']:,.0f} MB on disk (superseded files wait for the nightly vacuum)")
        if chain.get("exit_code"):
            print(f"growthlake run exited {chain['exit_code']}: a gate failed (its lines are on stderr), so the "
                  "warehouse, features and loops did not run: the figure leaves them out", flush=True)
        print(f"ratio growthlake ({mode}) / bare DuckDB: {total / base_s:.2f}x (target <= 2 at 10M)", flush=True)
    if len(normalizers) > 1:
        for mode in (m for m in modes if m != "run"):
            print(f"ingestion, {mode}: " + "  ".join(
                f"{n} {ingest[mode, n]:.1f}s ({landed / ingest[mode, n]:,.0f} events/s)" for n in normalizers),
                flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_chain":
        print(json.dumps(_chain(argv[1], argv[2])))
        return 0
    if argv and argv[0] == "--_baseline":
        print(json.dumps(_baseline(argv[1], argv[2])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", nargs="+", choices=["100k", "1M", "10M"], default=["100k", "1M"])
    ap.add_argument("--with-10m", action="store_true",
                    help="add the 10M-event run (~13 min hour by hour, ~5 min as a backfill, ~1 min each for the "
                         "landing zone and DuckDB; ~20 GB of disk: landing 5 GB, Delta 13 GB; 7 GB of memory)")
    ap.add_argument("--mode", nargs="+", choices=["hourly", "backfill", "ranged", "run"],
                    default=["hourly", "backfill", "ranged", "run"],
                    help="hourly: silver after every hour, as the hourly job; backfill: every hour ingested, then "
                         "one silver build over the backlog; ranged: the hours ingested in one pass, then one silver "
                         "build, as a ranged run; run: `growthlake run` over the week, Dagster, features and loops "
                         "included (default: all four, each on fresh tables)")
    ap.add_argument("--normalizer", nargs="+", choices=["columnar", "per_line"], default=["columnar"],
                    help="GROWTHLAKE_NORMALIZER of the growthlake runs (several: one run each, ingestion compared)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the lakes in this folder")
    args = ap.parse_args(argv)
    sizes = list(dict.fromkeys([*args.events, *(["10M"] if args.with_10m else [])]))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GROWTHLAKE_PII_KEY": secrets.token_hex(32)}
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-chain-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        for size in sizes:
            bench(size, base, env, list(dict.fromkeys(args.mode)), list(dict.fromkeys(args.normalizer)))
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

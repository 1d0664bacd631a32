"""Benchmark feature materialization on synthetic silver tables (100k people x 35 days).

    python benchmarks/bench_features.py [--people 100000] [--days 35] [--p-active 0.25] [--events 4]
                                        [--seed 0] [--profile] [--keep DIR]

Writes ``--days`` days of silver events and sessions straight into a fresh lake (vectorised,
one Delta commit per day and table, exactly the ``SILVER_EVENTS`` / ``SILVER_SESSIONS``
schemas): each person is active on a day with ``--p-active`` and then views on average
``--events`` pages in one session; a few active person-days also complete an onboarding step,
start a trial, pay or open an email. A third of the people consent to marketing.

Then times ``FeatureStore.materialize`` in one process, after Great Expectations is imported and
warmed up (timed on its own; ~2-3 s a process pays once):

* ``cold``: the first materialization of the last day — every rollup day is built from silver
  (the backfill a new lake or a new rollup column pays);
* ``again``: the same day once more — nothing changed, so no silver read and ``unchanged``;
* ``nightly``: one more day of silver is appended, then ``refresh_rollups`` (one silver day
  read) and ``materialize`` of that day are timed separately — the nightly job's body.

Prints wall seconds, people per view, statuses and the peak RSS of this process during each step
(Linux: the peak is reset between steps; elsewhere it is the peak so far). ``--profile`` also
prints the top 10 functions by cumulative time of the nightly step (its times then include the
profiler's overhead).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import numpy as np
import polars as pl
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from growth_loops.features.store import FeatureStore, Materialization
from lake import delta_io
from lake.paths import LakePaths
from lake.schemas import SILVER_EVENTS, SILVER_SESSIONS

START = date(2026, 10, 1)
DAY_S = 86_400
GAP_S = 30  # seconds between two page views of a session

ONBOARDING_STEPS = ["profile", "invite_team", "connect_data", "first_project", "tour"]
UTM_SOURCES = ["google", "bing", "newsletter", "linkedin", "twitter"]
DEVICES = ["desktop", "mobile", "tablet"]
# Shares of active person-days with each extra event, besides their page views.
P_ONBOARDING, P_TRIAL, P_PAYMENT, P_EMAIL = 0.03, 0.004, 0.003, 0.06
PRICES = np.array([29.0, 99.0, 290.0])

T = TypeVar("T")


# -- memory ----------------------------------------------------------------------------------------
def _reset_peak() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0); False where that is not possible."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """``(result, wall seconds, peak RSS MB during the call)``."""
    _reset_peak()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, _peak_mb()


# -- synthetic silver ------------------------------------------------------------------------------
def _pick(values: list[str | None], idx: np.ndarray) -> pl.Series:
    """``values[idx]`` as a string Series (a None in ``values`` gives nulls), without Python loops."""
    return pl.Series(values, dtype=pl.String).gather(idx)


def _ts(day_us: int, seconds: np.ndarray) -> pl.Series:
    return pl.Series(day_us + seconds.astype(np.int64) * 1_000_000).cast(pl.Datetime("us", "UTC"))


def synthetic_day(day: date, *, people: int, p_active: float, mean_events: float,
                  rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    """One day of silver events and sessions (Arrow tables with the silver schemas)."""
    width = max(6, len(str(people - 1)))
    day_us = int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp()) * 1_000_000
    stamp = day.strftime("%Y%m%d")

    act = np.flatnonzero(rng.random(people) < p_active)  # active people (indices), one session each
    m = act.size
    views = 1 + rng.poisson(max(mean_events - 1.0, 0.0), m)  # page views, mean ``mean_events``
    views = np.minimum(views, 500)
    start = (rng.random(m) * (DAY_S - GAP_S * (views + 4))).astype(np.int64)  # session start, s after midnight
    device = rng.integers(0, len(DEVICES), m)

    # page views: person-day i repeated views[i] times, 30 s apart
    first = np.repeat(np.cumsum(views) - views, views)
    k = np.arange(views.sum()) - first
    pv_row = np.repeat(np.arange(m), views)
    pv_sec = start[pv_row] + GAP_S * k

    # extras at the end of the session (email opens anywhere in the day, outside it)
    def extra(p: float) -> np.ndarray:
        return np.flatnonzero(rng.random(m) < p)

    onb, trial, pay, email = extra(P_ONBOARDING), extra(P_TRIAL), extra(P_PAYMENT), extra(P_EMAIL)
    end = start + GAP_S * views
    rows = np.concatenate([pv_row, onb, trial, pay, email])
    secs = np.concatenate([pv_sec, end[onb], end[trial] + 5, end[pay] + 10,
                           rng.integers(0, DAY_S, email.size)])
    # event name codes: 0 page_viewed, 1 onboarding, 2 trial, 3 payment, 4 email
    names = np.concatenate([np.zeros(pv_row.size, np.int64), np.full(onb.size, 1), np.full(trial.size, 2),
                            np.full(pay.size, 3), np.full(email.size, 4)])
    n = rows.size
    step = np.full(n, len(ONBOARDING_STEPS))  # the code past the steps is null
    step[names == 1] = rng.integers(0, len(ONBOARDING_STEPS), onb.size)
    revenue = np.full(n, np.nan)
    revenue[names == 3] = rng.choice(PRICES, pay.size)
    person = act[rows]
    utm = person % (len(UTM_SOURCES) + 1)  # one source per person; the last code is "none"

    event_ts = _ts(day_us, secs)
    events = pl.DataFrame({
        "event_id": pl.Series(np.arange(n)).cast(pl.String),
        "event_name": _pick(["page_viewed", "onboarding_step_completed", "trial_started", "payment_succeeded",
                             "email_opened"], names),
        "event_ts": event_ts,
        "received_at": event_ts + pl.Series(rng.integers(1_000, 5_000_000, n)).cast(pl.Duration("us")),
        "person_id": pl.Series(person).cast(pl.String),
        "device_type": _pick(DEVICES, device[rows]),
        "consent_marketing": pl.Series(person % 3 == 0),
        "revenue": pl.Series(revenue).fill_nan(None),
        "currency": _pick([None, None, None, "USD", None], names),
        "plan": _pick([None, None, "pro", "pro", None], names),
        "onboarding_step": _pick([*ONBOARDING_STEPS, None], step),
        "utm_source": _pick([*UTM_SOURCES, None], utm),
        "properties": _pick(["{}", "{}", '{"plan":"pro","trial_days":14}', "{}", "{}"], names),
    }).with_columns(
        event_id=pl.lit(f"evt_{stamp}_") + pl.col("event_id").str.zfill(9),
        event_date=pl.lit(day, dtype=pl.Date),
        person_id=pl.lit("usr_") + pl.col("person_id").str.zfill(width),
        _landing_partition=pl.col("received_at").dt.strftime("%Y-%m-%d-%H:00"),
    ).with_columns(
        user_id=pl.col("person_id"),
        client_session_id=pl.lit(f"cs_{stamp}_") + pl.col("person_id"),
    )
    for name in SILVER_EVENTS.names:  # the rest are nullable and not generated
        if name not in events.columns:
            events = events.with_columns(pl.lit(None, dtype=pl.String).alias(name))

    seconds = (GAP_S * (views - 1)).astype(np.float64)
    session_start = _ts(day_us, start)
    sessions = pl.DataFrame({
        "person_id": pl.Series(act).cast(pl.String),
        "session_start": session_start,
        "session_end": session_start + pl.Series((seconds * 1e6).astype(np.int64)).cast(pl.Duration("us")),
        "event_count": pl.Series(views.astype(np.int64)),
        "duration_s": pl.Series(seconds),
        "device_type": _pick(DEVICES, device),
        "is_bounce": pl.Series(views == 1),
    }).with_columns(
        person_id=pl.lit("usr_") + pl.col("person_id").str.zfill(width),
        session_date=pl.lit(day, dtype=pl.Date),
        first_event_name=pl.lit("page_viewed"),
    ).with_columns(session_id=pl.lit(f"ses_{stamp}_") + pl.col("person_id"))

    return (events.select(SILVER_EVENTS.names).to_arrow().cast(SILVER_EVENTS),
            sessions.select(SILVER_SESSIONS.names).to_arrow().cast(SILVER_SESSIONS))


def write_day(paths: LakePaths, day: date, args: argparse.Namespace, rng: np.random.Generator) -> int:
    events, sessions = synthetic_day(day, people=args.people, p_active=args.p_active,
                                     mean_events=args.events, rng=rng)
    delta_io.append(paths.silver_events, events, partition_by=["event_date"], operation="bench-silver")
    delta_io.append(paths.silver_sessions, sessions, partition_by=["session_date"], operation="bench-silver")
    return events.num_rows


# -- report ----------------------------------------------------------------------------------------
def _report(label: str, results: list[Materialization], wall: float, peak: float) -> None:
    views = "  ".join(f"{m.view} {m.rows:,} {m.status}" for m in results)
    print(f"{label}: {wall:6.2f}s  peak RSS {peak:,.0f} MB  | {views}")
    for m in results:
        if m.status == "held":
            print(f"    HELD {m.summary()}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=35)
    ap.add_argument("--p-active", type=float, default=0.25, help="share of people active on a day")
    ap.add_argument("--events", type=float, default=4.0, help="mean page views per active person-day")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", action="store_true", help="cProfile the nightly step (top 10 cumulative)")
    ap.add_argument("--keep", type=Path, default=None, help="directory to keep the lake in")
    args = ap.parse_args(argv)
    if args.days < 1 or args.people < 1:
        ap.error("--days and --people must be positive")

    os.environ.pop("GROWTHLAKE_ONLINE_STORE", None)  # the online store lives in this lake, not elsewhere
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench-features-"))
    store = None
    try:
        paths = LakePaths.from_root(base)
        rng = np.random.default_rng(args.seed)
        days = [START + timedelta(days=i) for i in range(args.days)]

        t0 = time.perf_counter()
        total = sum(write_day(paths, d, args, rng) for d in days)
        wall = time.perf_counter() - t0
        print(f"silver: {args.people:,} people x {args.days} days (p_active {args.p_active:g}, "
              f"{args.events:g} page views/active day): {total:,} events in {wall:.1f}s "
              f"({total / wall:,.0f} events/s incl. Delta writes)  peak RSS {_peak_mb():,.0f} MB")

        from expectations import warm_up

        _, wall, _ = _timed(warm_up)
        print(f"Great Expectations import + warm-up: {wall:.2f}s (excluded below)")

        store = FeatureStore(paths)
        last = days[-1]
        results, wall, peak = _timed(lambda: store.materialize(last))
        _report(f"cold    {last} (rollups from {args.days} silver days)", results, wall, peak)
        results, wall, peak = _timed(lambda: store.materialize(last))
        _report(f"again   {last} (nothing changed)            ", results, wall, peak)

        new = last + timedelta(days=1)
        t0 = time.perf_counter()
        added = write_day(paths, new, args, rng)
        print(f"appended {new}: {added:,} events in {time.perf_counter() - t0:.2f}s")

        prof = cProfile.Profile() if args.profile else None

        def nightly() -> tuple[dict[str, list[date]], float, list[Materialization], float]:
            t = time.perf_counter()
            rebuilt = store.refresh_rollups(through=new)
            t_refresh = time.perf_counter() - t
            t = time.perf_counter()
            res = store.materialize(new)
            return rebuilt, t_refresh, res, time.perf_counter() - t

        if prof is not None:
            prof.enable()
        (rebuilt, t_refresh, results, t_mat), wall, peak = _timed(nightly)
        if prof is not None:
            prof.disable()
        days_read = ", ".join(f"{s} {len(d)}" for s, d in sorted(rebuilt.items()))
        print(f"nightly {new}: refresh_rollups {t_refresh:.2f}s (silver days read: {days_read}) "
              f"+ materialize {t_mat:.2f}s")
        _report(f"nightly {new} (one new silver day)         ", results, wall, peak)
        for m in results:
            if m.drift is not None:
                print(f"    {m.view}: {m.drift.summary()}")
            elif m.drift_note:
                print(f"    {m.view}: drift not compared ({m.drift_note})")

        if prof is not None:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(10)
            print("\nnightly step, top 10 by cumulative time (profiled):")
            print(out.getvalue())
    finally:
        if store is not None:
            store.close()
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the whole chain day by day against the closed-loop simulator: the loop closes.

Each simulated day: the product (simulator) reads yesterday's outbox and emits the day's events →
every landing hour is ingested → silver is brought up to date → the day's features are
materialized (gated) → every loop decides (gated, approved, guarded) → the outbox is what the
product reads the next day. Used by the end-to-end tests and ``benchmarks/bench_loops.py``; the
same steps run as Dagster assets in production.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from growth_loops.actuation import features_document_path, load_features_document, mark_sent, pending
from growth_loops.features import FeatureStore
from growth_loops.loops.runtime import Loop, LoopRun, LoopSettings, run_decisions
from growth_loops.simulator.closed_loop import ClosedLoopConfig, ClosedLoopSimulator
from lake.contracts import load_plan
from lake.ingest import ingest_partition, list_landing_partitions
from lake.paths import LakePaths
from lake.pii import PiiMasker, pii_key_from_env
from lake.silver import build_silver

__all__ = ["ClosedLoopRun", "run_closed_loop"]


@dataclass
class ClosedLoopRun:
    """What happened on each simulated day."""

    days: list[datetime.date] = field(default_factory=list)
    runs: dict[datetime.date, list[LoopRun]] = field(default_factory=dict)
    messages_sent: int = 0
    seconds: dict[datetime.date, dict[str, float]] = field(default_factory=dict)  # per stage, per day


def run_closed_loop(paths: LakePaths, *, start: datetime.date, days: int, seed: int,
                    config: ClosedLoopConfig | None = None, settings: LoopSettings | None = None,
                    loops: list[Loop] | None = None,
                    on_day: Callable[[datetime.date, list[LoopRun]], None] | None = None,
                    ingest: Callable[[LakePaths, list[str]], None] | None = None) -> ClosedLoopRun:
    """Simulate ``days`` more days of a run that started at ``start``, with every loop in the chain.

    A lake that already holds days of this run (same seed, start and config) is resumed at the
    simulator's next day.

    Args:
        on_day: called as ``on_day(day, runs)`` after the day's decisions (tests approve versions
            there, as a person would with ``growthlake approvals approve``).
        ingest: called as ``ingest(paths, keys)`` with the day's new landing hours, in order, to
            ingest them (e.g. through the Dagster hourly job, or after injecting a fault); default:
            :func:`lake.ingest.ingest_partition` on each.
    """
    sim = ClosedLoopSimulator(paths.root, seed=seed, start=start, config=config)
    plan, masker, store = load_plan(), PiiMasker(pii_key_from_env(paths)), FeatureStore(paths)
    done = set(list_landing_partitions(paths))
    result = ClosedLoopRun()
    flag_path = features_document_path(paths)
    first = sim.next_day
    for i in range(days):
        day = first + datetime.timedelta(days=i)
        try:
            doc = load_features_document(flag_path)
        except Exception:  # noqa: BLE001 - no decisions yet: the product runs its defaults
            doc = None
        # The email sender sends what the nightly decisions queued, a few minutes into the day;
        # the product (simulator) sees them delivered that day.
        outbox = pending(paths)
        if outbox.height:
            sent_at = datetime.datetime.combine(day, datetime.time(0, 45), tzinfo=datetime.UTC)
            result.messages_sent += mark_sent(paths, outbox["message_id"].to_list(), sent_at)
            outbox = outbox.with_columns(pl.lit(sent_at, dtype=pl.Datetime("us", "UTC")).alias("sent_at"))
        clock = {"start": time.perf_counter()}
        sim.step(day, flags_document=doc, messages=outbox if outbox.height else None)
        clock["simulate"] = time.perf_counter()
        new = sorted(set(list_landing_partitions(paths)) - done)
        if ingest is not None:
            ingest(paths, new)
        else:
            for key in new:
                ingest_partition(paths, key, plan=plan, masker=masker)
        done.update(new)
        clock["ingest"] = time.perf_counter()
        build_silver(paths)
        clock["silver"] = time.perf_counter()
        store.materialize(day)
        clock["features"] = time.perf_counter()
        runs = run_decisions(paths, day, loops=loops, settings=settings,  # the nightly run after the day closes
                             now=datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(0, 30),
                                                           tzinfo=datetime.UTC))
        clock["decide"] = time.perf_counter()
        stages = list(clock)
        result.seconds[day] = {b: round(clock[b] - clock[a], 3) for a, b in zip(stages, stages[1:], strict=False)}
        result.days.append(day)
        result.runs[day] = runs
        if on_day is not None:
            on_day(day, runs)
    store.close()
    return result


def decisions_frame(result: ClosedLoopRun) -> pl.DataFrame:
    """One row per (day, loop): status, version, note — for printing and assertions."""
    return pl.DataFrame([{"day": d, "loop": r.loop, "status": r.status, "version": r.policy_version,
                          "approval": r.approval_state, "note": r.note}
                         for d, runs in result.runs.items() for r in runs])

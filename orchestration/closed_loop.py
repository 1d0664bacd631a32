"""The closed loop through the Dagster jobs: the simulated product reacts to the flags and the outbox.

Each simulated day: the product (simulator) reads the flags document and the messages the nightly
decisions queued, and lands the day's events → :func:`orchestration.runner.run_range` runs the
day's hours through the same jobs as ``growthlake run`` (ranged hourly run: bronze, silver; then
the day's features and every loop's decisions) → the flags document and the outbox are what the
product reads the next day. After the last day, one warehouse build (dbt) backfills the marts
from the first day, for the board report.

Why one dbt build and not one per day: the loops decide from the feature store, which is built
from silver, not from the marts; the marts serve the report and analysts. Building them once
over the whole range gives the same marts as building them nightly (they are rebuilt from silver)
at the cost of one build (~9 s on a 2-core machine) instead of one per day. Used by
``growthlake loops simulate``, ``make demo``, the truth tests and ``benchmarks/bench_loops.py``.
This module is a development and test tool: it imports the simulator, which the product never does.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from growth_loops.actuation import features_document_path, load_features_document, mark_sent, pending
from growth_loops.loops.runtime import LOOP_RUNS, LoopRun, LoopSettings, Outcome
from lake import delta_io
from lake.errors import GrowthlakeError
from lake.ingest import list_landing_partitions
from lake.paths import LakePaths
from simulation.closed_loop import ClosedLoopConfig, ClosedLoopSimulator

__all__ = ["ClosedLoopRun", "decisions_frame", "run_closed_loop", "write_true_effects"]


@dataclass
class ClosedLoopRun:
    """What happened on each simulated day."""

    days: list[datetime.date] = field(default_factory=list)
    runs: dict[datetime.date, list[LoopRun]] = field(default_factory=dict)
    messages_sent: int = 0
    failed: list[str] = field(default_factory=list)  # what run_range reported as failed, over every day
    seconds: dict[datetime.date, dict[str, float]] = field(default_factory=dict)  # per stage, per day


def run_closed_loop(paths: LakePaths, *, start: datetime.date, days: int, seed: int,
                    config: ClosedLoopConfig | None = None, settings: LoopSettings | None = None,
                    decide: bool = True, warehouse: bool = False, instance=None, tracking_plan: str | None = None,
                    on_day: Callable[[datetime.date, list[LoopRun]], None] | None = None,
                    before_ingest: Callable[[LakePaths, list[str]], None] | None = None) -> ClosedLoopRun:
    """Simulate ``days`` more days of a run that started at ``start``, the chain running through Dagster.

    A lake that already holds days of this run (same seed, start and config) is resumed at the
    simulator's next day.

    Args:
        settings: the loops' settings; only ``holdout_share`` reaches the decision job (its config).
        decide: run the loops' decisions (False: features only, the product on its defaults).
        warehouse: build the marts (dbt) once after the last day (for the report).
        instance: the Dagster instance (default: an ephemeral one).
        on_day: called as ``on_day(day, runs)`` after the day's decisions (tests approve versions
            there, as a person would with ``growthlake approvals approve``).
        before_ingest: called as ``before_ingest(paths, keys)`` with the day's new landing hours,
            before they run (e.g. to inject a fault into the landing files, or remove hours); the
            hours it adds are its own business (not run).
    """
    import dagster as dg

    from orchestration.definitions import build_definitions
    from orchestration.resources import LakeResource
    from orchestration.runner import build_warehouse, run_range

    sim = ClosedLoopSimulator(paths.root, seed=seed, start=start, config=config)
    defs = build_definitions(lake=LakeResource(root=paths.root, tracking_plan=tracking_plan))
    instance = instance if instance is not None else dg.DagsterInstance.ephemeral()
    loop_config: dict = {}
    if settings is not None:
        loop_config["holdout_share"] = settings.holdout_share
    done = set(list_landing_partitions(paths))
    result = ClosedLoopRun()
    flag_path = features_document_path(paths)
    first = sim.next_day
    last_end = datetime.datetime.combine(first + datetime.timedelta(days=days), datetime.time(), tzinfo=datetime.UTC)
    if days > 0 and last_end > datetime.datetime.now(datetime.UTC):
        raise GrowthlakeError(f"the closed loop would simulate {first} .. {first + datetime.timedelta(days=days - 1)}, "
                              "but only days that have ended (UTC) can run through the hourly jobs"
                              + (f"; {paths.root} already holds the days from {sim.start}" if first > sim.start else "")
                              + ": give an earlier start, fewer days, or a fresh root.")
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
        t0 = time.perf_counter()
        sim.step(day, flags_document=doc, messages=outbox if outbox.height else None)
        t1 = time.perf_counter()
        new = sorted(set(list_landing_partitions(paths)) - done)
        if before_ingest is not None:
            before_ingest(paths, new)
            landed = set(list_landing_partitions(paths))
            new = [k for k in new if k in landed]  # the day's hours the hook left (it may add history of its own)
            done |= landed
        done.update(new)
        end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time(), tzinfo=datetime.UTC)
        # The nightly decision run after the day closes.
        day_config = {**loop_config, "now": (end + datetime.timedelta(minutes=30)).isoformat()}
        ran = run_range(paths, new, defs=defs, instance=instance, covered_until=end, warehouse=False,
                        loops=decide, loop_config=day_config, hour_lines=False) if new else None
        if ran is not None:
            result.failed += ran.failed
        runs = _loop_runs(paths, day) if decide else []
        result.seconds[day] = {"simulate": round(t1 - t0, 3), "chain": round(time.perf_counter() - t1, 3)}
        result.days.append(day)
        result.runs[day] = runs
        if on_day is not None:
            on_day(day, runs)
    write_true_effects(paths, sim.config)
    if warehouse and result.days:
        build_warehouse(paths, defs=defs, instance=instance, failed=result.failed,
                        backfill_from=min(start, result.days[0]).isoformat())
    return result


def write_true_effects(paths: LakePaths, config: ClosedLoopConfig) -> Path | None:
    """Write the simulator's true effect of each measured experiment it knows to
    ``reports/true_effects.json``, for the report to show beside the measured lifts.

    Known: the trial nudge's absolute lift on conversion — ``trial_nudge_lift`` scaled by the mean
    conversion multiplier of the paywall variants the nudged units met. Returns the file, or None
    when no experiment it knows was measured yet.
    """
    from growth_loops.loops.runtime import DECISIONS, EXPERIMENT_RESULTS
    from growth_loops.report.data import true_effects_path
    from simulation.closed_loop import read_truth

    results = pl.from_arrow(delta_io.read(paths.table("experiments", "results"), EXPERIMENT_RESULTS,
                                          columns=["loop", "experiment", "metric"]))
    assert isinstance(results, pl.DataFrame)
    nudges = results.filter((pl.col("loop") == "trial_nudge") & (pl.col("metric") == "converted")).unique()
    if nudges.is_empty():
        return None
    units = pl.from_arrow(delta_io.read(paths.loop_decisions("trial_nudge"), DECISIONS,
                                        columns=["person_id", "actuated"]))
    assert isinstance(units, pl.DataFrame)
    truth = read_truth(paths.root)
    met = (truth.filter(pl.col("paywall_variant").is_not_null()).group_by("user_id")
           .agg(pl.col("paywall_variant").last()))
    variants = (units.filter(pl.col("actuated")).join(met, left_on="person_id", right_on="user_id", how="left")
                ["paywall_variant"].fill_null("control").to_list())
    factor = (sum(config.paywall_variants[v].conversion_multiplier for v in variants) / len(variants)
              if variants else 1.0)
    effects = [{"experiment": e, "metric": "converted", "abs": round(config.trial_nudge_lift * factor, 6),
                "note": f"trial_nudge_lift {config.trial_nudge_lift} x mean paywall conversion multiplier {factor:.4f}"}
               for e in sorted(nudges["experiment"].to_list())]
    path = Path(true_effects_path(paths))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"source": "closed-loop simulator (orchestration.closed_loop)", "effects": effects},
                               indent=2))
    return path


def _loop_runs(paths: LakePaths, day: datetime.date) -> list[LoopRun]:
    """The day's loop runs as the decision job recorded them (``loops/runs``)."""
    table = pl.from_arrow(delta_io.read(paths.table("decisions", "loop_runs"), LOOP_RUNS))
    assert isinstance(table, pl.DataFrame)
    if table.is_empty():
        return []
    rows = table.filter(pl.col("day") == day).to_dicts()
    return [LoopRun(loop=r["loop"], day=day, policy_version=r["policy_version"], status=r["status"],
                    approval_state=r["approval_state"], outcome=Outcome(), note=r["note"]) for r in rows]


def decisions_frame(result: ClosedLoopRun) -> pl.DataFrame:
    """One row per (day, loop): status, version, note — for printing and assertions."""
    return pl.DataFrame([{"day": d, "loop": r.loop, "status": r.status, "version": r.policy_version,
                          "approval": r.approval_state, "note": r.note}
                         for d, runs in result.runs.items() for r in runs])

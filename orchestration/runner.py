"""The chain over a range of landing hours, as ``growthlake run`` drives it: the one execution path.

:func:`run_range` runs the Dagster jobs in-process — the hourly job in ranged runs, then the
nightly warehouse (dbt), the nightly features and the nightly loops for every complete day of the
range. ``growthlake run``, ``make demo`` and the closed-loop simulator
(:mod:`orchestration.closed_loop`) all call it, so what the tests prove against the simulator's
truth is the path production runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from lake.paths import LakePaths
from lake.settings import Settings

__all__ = ["RangeResult", "dagster_instance", "run_range"]


@dataclass
class RangeResult:
    """What a :func:`run_range` did.

    Attributes:
        failed: Hours that failed a gate, and the steps that failed (``warehouse``, ``features <day>``,
            ``loops <day>``, ``run <first> .. <last>``).
        held: The hours whose rows a failed gate holds.
        days: The days whose features and loops ran.
    """

    failed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    days: list[date] = field(default_factory=list)


def dagster_instance(settings: Settings | None = None):
    """The Dagster instance of ``$DAGSTER_HOME`` (created if missing, with growthlake's ``dagster.yaml``
    if it has none: :func:`orchestration.event_log.ensure_instance_config`), so runs show in the UI;
    an ephemeral one when it is unset."""
    import dagster as dg

    from orchestration.event_log import ensure_instance_config

    home = (settings or Settings.from_env()).dagster_home
    if not home:
        return dg.DagsterInstance.ephemeral()
    ensure_instance_config(home)
    return dg.DagsterInstance.from_config(home)


def run_range(paths: LakePaths, keys: Sequence[str], *, defs, instance, covered_until: datetime,
              warehouse: bool = True, backfill_from: str | None = None, features: bool = True,
              loops: bool = True, loop_config: dict | None = None, hour_lines: bool = True,
              log_level: str = "WARNING") -> RangeResult:
    """Run the chain over the closed landing hours ``keys`` (sorted) through the Dagster jobs of ``defs``.

    The hourly job runs in ranged runs (:func:`orchestration.hours.split_runs`); an hour that
    fails a gate is held and makes only the days it touches untrusted. Then, unless a run failed
    otherwise: the warehouse (``warehouse``; ``backfill_from`` rebuilds the daily facts from that
    day), and for every day of the range that had ended by ``covered_until`` and is trusted, the
    features and (``loops``) the loop decisions, day by day.

    Args:
        loop_config: the ``decide_loops`` op config of the loops job (e.g. ``holdout_share``, ``now``).
        hour_lines: print one line per hour (otherwise one line per ranged run).
    """
    from orchestration.hours import split_runs

    job = defs.resolve_job_def("hourly_ingestion")
    expected = {k.name for k in job.asset_layer.asset_graph.asset_check_keys}
    runs = split_runs(list(keys))
    result = RangeResult()
    failed = result.failed
    started = time.perf_counter()
    done = 0
    for r, hours in enumerate(runs, 1):
        t0 = time.perf_counter()
        verdicts, run_failed = _run_hours(job, instance, hours, log_level=log_level)
        failed += _print_hours(paths, hours, verdicts, first=done, total=len(keys), expected=expected,
                               echo=hour_lines)
        if run_failed and not any(h in failed for h in hours):
            failed.append(f"run {hours[0]} .. {hours[-1]}")
        done += len(hours)
        print(f"  run {r}/{len(runs)}: {len(hours)} hour(s) {hours[0]} .. {hours[-1]} in "
              f"{time.perf_counter() - t0:.2f}s", flush=True)
    if hour_lines:
        print(f"hourly partitions done in {time.perf_counter() - started:.1f}s")
    # An hour that failed a gate makes only the days it touches untrusted: the warehouse is built from what
    # was published, and features and loops run for the other days. A run that failed otherwise stops here.
    key_set = set(keys)
    result.held = held = [h for h in failed if h in key_set]
    broken = [f for f in failed if f not in set(held)]
    untrusted = _days_touched(paths, held)
    if warehouse and not broken:
        build_warehouse(paths, defs=defs, instance=instance, failed=failed, backfill_from=backfill_from,
                        log_level=log_level)
    if not features or broken or "warehouse" in failed:
        return result
    from orchestration.cli_features import complete_days, materialize_days

    days = complete_days(list(keys), through=covered_until)
    if untrusted and days:
        skipped = [d for d in days if d in untrusted]
        days = [d for d in days if d not in untrusted]
        if skipped:
            print(f"features and loops skip {', '.join(map(str, skipped))}: untrusted while "
                  f"{', '.join(held[:5])}{' …' if len(held) > 5 else ''} failed a gate (they run once it passes)",
                  flush=True)
    if not days:
        return result
    result.days = days
    t0 = time.perf_counter()
    failed += [f"features {d}" for d in materialize_days(defs, instance, days, log_level=log_level)]
    if hour_lines:
        print(f"features: {len(days)} day(s) materialized in {time.perf_counter() - t0:.1f}s "
              f"(`growthlake features list` to inspect)")
    if loops:
        from orchestration.cli_loops import decide_days

        t0 = time.perf_counter()
        failed += [f"loops {d}" for d in decide_days(defs, instance, days, log_level=log_level, config=loop_config)]
        if hour_lines:
            print(f"loops: {len(days)} day(s) decided in {time.perf_counter() - t0:.1f}s "
                  f"(`growthlake approvals list` for versions waiting for you)")
    return result


def build_warehouse(paths: LakePaths, *, defs, instance, failed: list[str] | None = None,
                    backfill_from: str | None = None, log_level: str = "WARNING") -> bool:
    """The nightly warehouse job (dbt build and its tests); appends ``warehouse`` to ``failed`` when it fails."""
    t0 = time.perf_counter()
    build_config = {"backfill_from": backfill_from} if backfill_from else {}
    res = defs.resolve_job_def("nightly_warehouse").execute_in_process(
        instance=instance, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}},
                    "ops": {"warehouse_dbt_build": {"config": build_config}}})
    bad = [c.check_name for c in res.get_asset_check_evaluations() if not c.passed]
    built = len(res.get_asset_materialization_events())
    if not res.success and failed is not None:
        failed.append("warehouse")
    print(f"warehouse: {built} dbt models built, {len(bad)} failed tests"
          f"{' (' + ', '.join(bad[:5]) + ')' if bad else ''}, {'ok' if res.success else 'FAILED'} "
          f"in {time.perf_counter() - t0:.1f}s -> {paths.warehouse}", flush=True)
    return bool(res.success)


def _days_touched(paths: LakePaths, hours: list[str]) -> set[date]:
    """The days whose figures the rows of ``hours`` belong to: each hour's own day and the event dates
    its ledger row records (late events)."""
    if not hours:
        return set()
    from lake.ledger import read_ledger

    days = {date.fromisoformat(h[:10]) for h in hours}
    for row in read_ledger(paths, hours).to_pylist():
        days.update(d if isinstance(d, date) else date.fromisoformat(str(d)) for d in row.get("event_dates") or [])
    return days


def _execute(job, instance, hours: list[str], *, log_level: str):
    from orchestration.hours import HOUR_RANGE_TAGS

    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if len(hours) == 1:  # as the hourly schedule runs it
        return job.execute_in_process(partition_key=hours[0], instance=instance, raise_on_error=False,
                                      run_config=run_config)
    return job.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config,
                                  tags={HOUR_RANGE_TAGS[0]: hours[0], HOUR_RANGE_TAGS[1]: hours[-1]})


def _run_hours(job, instance, hours: list[str], *, log_level: str) -> tuple[dict[str, dict[str, bool]], bool]:
    """The hourly job over consecutive ``hours`` (one ranged run), and what its gates said per hour.

    A blocking gate that fails for one hour fails the step holding every hour of the run, so the
    other hours' later gates and their silver build did not run: they are run again without the
    hours that failed (bronze holds them already, so nothing is ingested twice), until the runs
    pass or nothing is left to check.

    Returns:
        Per hour, each gate's latest verdict; and whether a run failed other than by a gate.
    """
    from orchestration.hours import split_runs

    expected = {k.name for k in job.asset_layer.asset_graph.asset_check_keys}
    verdicts: dict[str, dict[str, bool]] = {h: {} for h in hours}
    errored = False
    todo = [hours]
    while todo:
        rerun: list[str] = []
        for part in todo:
            res = _execute(job, instance, part, log_level=log_level)
            for e in res.get_asset_check_evaluations():
                if e.partition in verdicts:
                    verdicts[e.partition][e.check_name] = e.passed
            if res.success:
                continue
            bad = {h for h in part if not all(verdicts[h].values())}
            unchecked = [h for h in part if h not in bad and expected - set(verdicts[h])]
            if not bad:
                errored = True  # a step raised: not a gate's verdict
            elif unchecked and len(unchecked) < len(part):
                print(f"  {len(bad)} hour(s) failed a gate; the run's other {len(unchecked)} hour(s) are run again "
                      "without them, for their remaining gates and silver", flush=True)
                rerun += unchecked
        todo = split_runs(rerun)
    return verdicts, errored


def _print_hours(paths: LakePaths, hours: list[str], verdicts: dict[str, dict[str, bool]], *, first: int,
                 total: int, expected: set[str], echo: bool = True) -> list[str]:
    """Print each hour's line (its ledger row and gates; a failed hour always); return the hours whose gate failed."""
    from lake.ledger import read_ledger

    ledger = {r["landing_partition"]: r for r in read_ledger(paths, hours).to_pylist()}
    failed = []
    for i, key in enumerate(hours, first + 1):
        checks = verdicts.get(key, {})
        bad = sorted(name for name, passed in checks.items() if not passed)
        missing = sorted(expected - set(checks))
        if bad:
            failed.append(key)
            verdict = "FAILED: " + ", ".join(bad)
        elif missing:
            verdict = f"not checked: {', '.join(missing)}"
        else:
            verdict = "gates ok"
        if not echo and not bad and not missing:
            continue
        figures = ledger.get(key, {})
        print(f"[{i:>4}/{total}] {key}  landed {figures.get('lines_landed', 0):>6}  "
              f"bronze {figures.get('bronze_rows', 0):>6}  "
              f"quarantined {figures.get('quarantined', 0):>4}  consent {figures.get('consent_dropped', 0):>4}  "
              f"dups {figures.get('duplicates_dropped', 0):>4}  held {figures.get('held_for_audit', 0):>4}  {verdict}",
              flush=True)
    return failed


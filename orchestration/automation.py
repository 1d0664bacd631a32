"""Declarative automation: each layer is built when what it reads has new data whose blocking gates passed.

The chain, and who starts each link (README "What runs by itself"):

* ``landing/events`` -> bronze + silver: ``landing_files_sensor`` (it sees late files of any hour of the
  last 3 days, which a condition on the latest hour would not) runs ``hourly_ingestion`` — bronze's
  blocking gates stop silver inside that run. Silver also has :func:`hourly_after_gates`, for a bronze
  hour built without it (e.g. from the UI).
* silver -> the dbt warehouse, every model by one rule on silver: :func:`warehouse_after_gates`
  (``observability/data_trust_daily``, which the build itself rewrites, is no trigger).
* bronze -> ``governance/erasures``: ``on_cron`` at 02:00 UTC, not held by gates (an erasure is owed).
* silver -> features (daily): :func:`nightly_after_gates` — a day's values are computed once the day is
  over; ``eager()`` would fire at every late hour, and hold a day forever for a quiet hour never landed.
* features -> loops (daily, one partition per day on both sides): ``eager()`` + the blocking checks.
* loops + marts -> ``reports/board`` (unpartitioned): :func:`after_gates`.

Every rule requires the blocking checks of what it reads to have passed: a failed gate leaves the
downstream asset as it was until the data is fixed and the gate passes. ``AUTOMATION_SENSOR`` evaluates
the conditions every 30 s (``dagster dev`` runs it from the start).
"""

from __future__ import annotations

import functools
import operator
from datetime import timedelta
from typing import Any, cast

import dagster as dg

__all__ = ["AUTOMATION_SENSOR", "GATE_LOOKBACK", "after_gates", "daily_after_gates", "hourly_after_gates",
           "nightly_after_gates", "warehouse_after_gates"]

AC = dg.AutomationCondition

# How far back a failed hourly gate holds the consumers of an hourly layer: the hours the landing sensor
# still re-ingests when their files change (orchestration/bronze/sensors.py LOOKBACK). An older failed
# hour is a known, recorded failure (alerts, data_trust_daily), no longer a reason to hold every build.
GATE_LOOKBACK = timedelta(days=3)

SILVER_TABLES = [dg.AssetKey(["silver", t]) for t in ("events", "identity_map", "sessions")]
TRUST_TABLE = dg.AssetKey(["observability", "data_trust_daily"])
# The warehouse build rewrites the trust table before dbt runs: its new version must not start another build.
_NOT_A_TRIGGER = dg.AssetSelection.assets(TRUST_TABLE)


def _upstream_failed(lookback: timedelta | None, *, latest_only: bool = True) -> dg.AutomationCondition:
    """An upstream asset has a blocking check whose latest evaluation failed, and it is not about to be
    rebuilt. With ``latest_only``, only the upstream partitions within ``lookback`` of its newest count (an
    unpartitioned asset reads every partition upstream); without, those the target's partition maps to
    (a day's 24 hours)."""
    failed = AC.any_checks_match(AC.check_failed(), blocking_only=True) & ~AC.will_be_requested()
    if latest_only:
        failed = AC.in_latest_time_window(lookback) & failed  # first: the rest is evaluated on that window only
    return AC.any_deps_match(failed).with_label("upstream_blocking_check_failed")


def _upstream_updated(*, with_requests: bool) -> dg.AutomationCondition:
    """An upstream asset got new data (not in a run that also built this one) — or, with ``with_requests``,
    is requested in the same tick (so a chain of unpartitioned models goes in one run)."""
    newly = AC.newly_updated() & ~AC.executed_with_root_target()
    return AC.any_deps_match(newly | AC.will_be_requested() if with_requests else newly).ignore(
        _NOT_A_TRIGGER).with_label("upstream_updated")


def after_gates(*, lookback: timedelta | None = None, with_requests: bool = True,
                wait_for: dg.AssetSelection | None = None) -> dg.AutomationCondition:
    """Build once an upstream asset has new data, nothing upstream or of this asset is running, and no
    blocking check upstream failed — the rule of every unpartitioned asset downstream of the lake. An
    upstream asset in ``wait_for`` (partitioned: never in this asset's run) requested in the same tick is
    waited for, not built beside."""
    condition = (
        _upstream_updated(with_requests=with_requests).since_last_handled()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & ~_upstream_failed(lookback)
    )
    if wait_for is not None:
        condition = condition & ~AC.any_deps_match(AC.will_be_requested()).allow(wait_for)
    return condition.with_label("new_upstream_data_and_gates_passed")


def warehouse_after_gates() -> dg.AutomationCondition:
    """Every dbt model: once a silver table got new data, while no silver build is running or requested and
    none of silver's hours of the last ``GATE_LOOKBACK`` has a failed blocking check. The same rule for every
    model — on silver, not on each model's own parents — so one tick requests the whole project and a build
    is one ``dbt build`` (``stg_observability__data_trust_daily`` reads the trust table the build itself
    rewrites, not silver: a rule on its parents would never, or always, fire). The warehouse refuses
    unaudited silver, hence no build beside a silver one."""
    def any_silver(condition: dg.AutomationCondition) -> Any:  # Any: the condition classes' generics defeat mypy
        return functools.reduce(operator.or_, (AC.asset_matches(key, condition) for key in SILVER_TABLES))

    failed = AC.in_latest_time_window(GATE_LOOKBACK) & AC.any_checks_match(AC.check_failed(), blocking_only=True)
    return (
        any_silver(AC.newly_updated()).with_label("silver_updated").since_last_handled()
        & ~any_silver(AC.in_progress() | AC.will_be_requested()).with_label("silver_being_built")
        & ~any_silver(failed).with_label("silver_blocking_check_failed")
        & ~AC.in_progress()
    ).with_label("warehouse_after_gates")


def hourly_after_gates() -> dg.AutomationCondition:
    """An hourly asset downstream of another hourly one: ``eager()`` (the newest hour) once the upstream
    hour's blocking checks passed."""
    return (AC.eager() & AC.all_deps_blocking_checks_passed()).with_label("eager_after_gates")


def daily_after_gates() -> dg.AutomationCondition:
    """A daily asset downstream of another daily one: ``eager()`` on the day that just closed, once the
    upstream day's blocking checks passed."""
    return (AC.eager() & AC.all_deps_blocking_checks_passed()).with_label("eager_after_gates")


def nightly_after_gates(cron: str) -> dg.AutomationCondition:
    """A daily asset over hourly data: the day that just closed, from ``cron`` on (a trigger that waits,
    ``since_last_handled``, until it is acted on), once none of the day's upstream hours has a failed
    blocking check and nothing upstream is running."""
    return (
        AC.in_latest_time_window()
        & cast(Any, AC.cron_tick_passed(cron, "UTC")).since_last_handled()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & ~_upstream_failed(None, latest_only=False)
    ).with_label(f"nightly_after_gates({cron})")


AUTOMATION_SENSOR = dg.AutomationConditionSensorDefinition(
    "growthlake_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates every asset's automation condition: a layer is built when what it reads has new "
                "data whose blocking checks passed (orchestration/automation.py).",
)

"""Runs over a range of hours: one pass per step, a verdict per hour.

The hourly assets (bronze, silver) carry a backfill policy: a backfill launched from the UI or
the CLI, and ``growthlake run`` over a range, materialize up to :data:`HOURS_PER_RUN` hours in one
run, each step taking all of them at once (``context.partition_keys``); the hourly schedule and the
landing sensor keep requesting one-hour runs.

**Checks in a ranged run (Dagster 1.13).** A check whose spec has a ``partitions_def`` is planned
per partition: the run's ``AssetCheckEvaluationPlanned`` event carries the range, and the instance
records one planned execution per hour. An ``AssetCheckResult``, however, is turned into an
evaluation of the step's single ``partition_key`` — which a ranged run does not have — so it
would be stored as one *unpartitioned* evaluation while every hour's planned execution stayed
"planned". A step therefore yields, per check, the check's output once and one
``AssetCheckEvaluation`` per hour with ``partition=<hour>``: each hour's planned execution gets its
own verdict (UI, ``instance`` queries, the trust hooks), and Dagster fails the step when any
hour's blocking check failed — which, the step covering every hour of the run, stops what is
downstream of it in that run for every hour (the hours that passed are published, and picked up
by the next run downstream). The evaluations point at no materialization record; Dagster relates
an evaluation to the materialization of the same run.

The hooks, the ledger and the trust records stay per hour: materializations carry per-hour
metadata (``context.add_asset_metadata(..., partition_key=hour)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

__all__ = ["HOURS_PER_RUN", "HOUR_RANGE_TAGS", "HourCheck", "check_events", "hourly_backfill", "run_hours",
           "split_runs"]

HOUR_RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
"""The run tags of a ranged run (what a backfill sets): its first and last partition, inclusive."""

HOURS_PER_RUN = 168
"""Hours one ranged run covers at most (a week): bounds a run's check evaluations and its steps'
batches (bronze and silver bound their own memory further, by bytes and rows)."""

hourly_backfill = dg.BackfillPolicy.multi_run(HOURS_PER_RUN)
"""The backfill policy of the hourly assets: ranges of at most :data:`HOURS_PER_RUN` hours per run."""


def run_hours(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[str]:
    """The hours a step covers: the run's partition key, or every key of its partition range."""
    return list(context.partition_keys)


def split_runs(keys: list[str], *, max_hours: int = HOURS_PER_RUN) -> list[list[str]]:
    """Sorted hourly keys as the ranges of ranged runs: consecutive hours, at most ``max_hours`` each
    (a gap — an hour that is not in ``keys`` — starts a new range)."""
    from datetime import timedelta

    from lake.ingest import parse_partition_key

    runs: list[list[str]] = []
    previous = None
    for key in sorted(set(keys)):
        hour = parse_partition_key(key)
        if not runs or previous is None or hour - previous != timedelta(hours=1) or len(runs[-1]) >= max_hours:
            runs.append([])
        runs[-1].append(key)
        previous = hour
    return runs


@dataclass(frozen=True)
class HourCheck:
    """One check's verdict on one hour."""

    asset_key: dg.AssetKey
    check_name: str
    partition: str
    passed: bool
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def check_events(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
                 checks: Iterable[HourCheck]) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """What a step yields for its checks: each selected check's output, then one evaluation per hour.

    ``checks`` may name only selected checks; severity is ERROR and ``blocking`` comes from the spec.
    """
    op_context = context.op_execution_context
    assets_def = op_context.assets_def
    selected = op_context.selected_asset_check_keys
    for key in sorted(selected, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        yield dg.Output(None, output_name=assets_def.get_output_name_for_asset_check_key(key))
    for c in checks:
        key = dg.AssetCheckKey(c.asset_key, c.check_name)
        spec = assets_def.get_spec_for_check_key(key)
        yield dg.AssetCheckEvaluation(
            asset_key=c.asset_key, check_name=c.check_name, passed=c.passed, partition=c.partition,
            severity=dg.AssetCheckSeverity.ERROR, blocking=spec.blocking, description=c.description,
            metadata={k: v for k, v in c.metadata.items() if v is not None},
        )

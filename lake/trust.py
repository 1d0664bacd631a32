"""Data trust: what every gate said about every partition, and which days decisions may use.

Two append-only Delta tables under ``$ROOT/delta/observability``:

- ``gate_evaluations``: one row per evaluation of a gate (a Dagster asset check, a dbt test, an
  operator's acceptance) on one asset partition, with the data dates that partition carries (an
  hour of landing carries its own date and the dates of the late events it brought).
- ``asset_runs``: one row per asset per run step: rows, freshness lag (gates joined when read),
  quarantine rate, reconciliation.

The rule of trust, in one place (:func:`untrusted_days`): a day is untrusted while the *latest*
evaluation of any gate (of ERROR severity: a WARN is reported, not enforced) on a partition
carrying that day failed (re-running the partition with a
passing result, or ``growthlake trust accept``, resolves it), or while silver has not caught up
with its end (:data:`DAY_COMPLETE_SLACK`: the stale-upstream case). A failed gate on an
unpartitioned asset (a mart's dbt test) makes every day untrusted until it passes again.

The loops (:mod:`growth_loops.loops.runtime`) act only on trusted days; the warehouse marks each
``marts.fct_daily_oec`` row with the same verdict (:func:`write_daily_trust` feeds its source).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lake import delta_io
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.schemas import SILVER_EVENTS, UTC_TS

__all__ = ["ASSET_RUNS", "DAILY_TRUST", "DAY_COMPLETE_SLACK", "GATE_EVALUATIONS", "DayTrust", "accept_gate",
           "daily_verdicts", "data_dates_of_partition", "latest_gate_evaluations", "read_asset_runs",
           "record_asset_runs", "record_gate_evaluations", "silver_days", "silver_fresh_through", "untrusted_days",
           "verify_daily_trust", "write_daily_trust"]

# A day is complete once silver holds events received within this much of the day's end: the
# silver freshness SLA's fail window (orchestration/freshness.py), so a loop run at 00:30 after a
# normal hourly cadence sees its day complete, and one after a collector outage does not.
DAY_COMPLETE_SLACK = dt.timedelta(hours=3)

GATE_EVALUATIONS = pa.schema([
    pa.field("evaluated_at", UTC_TS, nullable=False),
    pa.field("run_id", pa.string()),
    pa.field("asset", pa.string(), nullable=False),  # e.g. "bronze/events"
    pa.field("partition", pa.string()),  # null for an unpartitioned asset
    pa.field("gate", pa.string(), nullable=False),  # the check name
    pa.field("passed", pa.bool_(), nullable=False),
    pa.field("severity", pa.string()),  # ERROR (a failure untrusts the data) | WARN (reported only)
    pa.field("blocking", pa.bool_(), nullable=False),
    pa.field("description", pa.string()),
    pa.field("data_dates", pa.list_(pa.date32())),  # the days the partition's data belongs to
    pa.field("source", pa.string(), nullable=False),  # dagster | operator
    pa.field("actor", pa.string()),  # who accepted a failure (source = operator)
])

ASSET_RUNS = pa.schema([
    pa.field("recorded_at", UTC_TS, nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("job", pa.string()),
    pa.field("step", pa.string()),
    pa.field("asset", pa.string(), nullable=False),
    pa.field("partition", pa.string()),
    pa.field("status", pa.string(), nullable=False),  # materialized | failed
    pa.field("rows", pa.int64()),
    pa.field("freshness_lag_s", pa.float64()),  # recorded_at minus the end of the partition's time window
    pa.field("quarantine_rate", pa.float64()),  # bronze: quarantined / lines landed
    pa.field("reconciled", pa.bool_()),  # bronze: the ledger reconciles
    pa.field("data_dates", pa.list_(pa.date32())),
    pa.field("error", pa.string()),  # status = failed: why the step failed
])

DAILY_TRUST = pa.schema([
    pa.field("date_day", pa.date32(), nullable=False),
    pa.field("is_trusted", pa.bool_(), nullable=False),
    pa.field("failed_gates", pa.int64(), nullable=False),
    pa.field("untrusted_reasons", pa.string()),  # "; "-joined, null when trusted
    pa.field("computed_at", UTC_TS, nullable=False),
])

_LOCK = "observability_trust"


@dataclass(frozen=True)
class DayTrust:
    day: dt.date
    trusted: bool
    reasons: tuple[str, ...]


def _append(uri: str, rows: Sequence[dict], schema: pa.Schema, operation: str) -> int:
    if not rows:
        return 0
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in schema} for r in rows], schema=schema)
    delta_io.append(uri, table, operation=operation)
    return table.num_rows


def record_gate_evaluations(paths: LakePaths, rows: Sequence[dict]) -> int:
    """Append gate evaluations (dicts keyed by :data:`GATE_EVALUATIONS` columns); returns rows written."""
    with table_lock(paths, _LOCK):
        return _append(paths.gate_evaluations, rows, GATE_EVALUATIONS, "record_gates")


def record_asset_runs(paths: LakePaths, rows: Sequence[dict]) -> int:
    """Append per-asset run metrics (dicts keyed by :data:`ASSET_RUNS` columns)."""
    with table_lock(paths, _LOCK):
        return _append(paths.asset_runs, rows, ASSET_RUNS, "record_asset_runs")


def read_asset_runs(paths: LakePaths) -> pl.DataFrame:
    """Asset runs with the gates evaluated on them in the same run (checks often run in a later step
    of the run): ``gates_passed``, ``gates_failed`` and ``failed_gates`` are joined in here."""
    runs = pl.from_arrow(delta_io.read(paths.asset_runs, ASSET_RUNS))
    gates = pl.from_arrow(delta_io.read(paths.gate_evaluations, GATE_EVALUATIONS,
                                        columns=["run_id", "asset", "partition", "gate", "passed"]))
    assert isinstance(runs, pl.DataFrame) and isinstance(gates, pl.DataFrame)
    per_run = gates.group_by(["run_id", "asset", "partition"]).agg(
        pl.col("passed").sum().cast(pl.Int64).alias("gates_passed"),
        (~pl.col("passed")).sum().cast(pl.Int64).alias("gates_failed"),
        pl.col("gate").filter(~pl.col("passed")).sort().alias("failed_gates"))
    return (runs.join(per_run, on=["run_id", "asset", "partition"], how="left", nulls_equal=True)
            .with_columns(pl.col("gates_passed", "gates_failed").fill_null(0)))


def data_dates_of_partition(partition: str | None, event_dates: Iterable[dt.date] = ()) -> list[dt.date]:
    """The days a partition's data belongs to: its own date (hourly ``YYYY-MM-DD-HH:00`` or daily
    ``YYYY-MM-DD`` keys) plus ``event_dates`` (the late events an hour brought); [] if unpartitioned."""
    days = set(event_dates)
    if partition:
        try:
            days.add(dt.date.fromisoformat(partition[:10]))
        except ValueError:
            pass
    return sorted(days)


def latest_gate_evaluations(paths: LakePaths) -> pl.DataFrame:
    """The newest evaluation of each (asset, partition, gate)."""
    frame = pl.from_arrow(delta_io.read(paths.gate_evaluations, GATE_EVALUATIONS))
    assert isinstance(frame, pl.DataFrame)
    if frame.is_empty():
        return frame
    return (frame.sort("evaluated_at")
            .unique(["asset", "partition", "gate"], keep="last", maintain_order=True)
            .sort(["asset", "partition", "gate"], nulls_last=True))


def accept_gate(paths: LakePaths, asset: str, partition: str | None, gate: str, *, actor: str, reason: str,
                now: dt.datetime | None = None) -> dict:
    """Record an operator's acceptance of a failed gate (e.g. a real outage hour): the days it
    covers become trusted again. Raises ``ValueError`` unless the gate's latest evaluation failed."""
    if not actor.strip() or not reason.strip():
        raise ValueError("accepting a failed gate needs an actor and a reason (they go to the trust log)")
    latest = latest_gate_evaluations(paths)
    match = latest.filter((pl.col("asset") == asset) & (pl.col("gate") == gate)
                          & (pl.col("partition").is_null() if partition is None else pl.col("partition") == partition))
    if match.is_empty() or match["passed"][0]:
        where = f"{asset}[{partition}]:{gate}" if partition else f"{asset}:{gate}"
        raise ValueError(f"{where} has no failed latest evaluation to accept: see `growthlake trust`")
    failed = match.row(0, named=True)
    row = {**failed, "evaluated_at": now or dt.datetime.now(dt.UTC), "run_id": None, "passed": True,
           "description": f"accepted by {actor}: {reason} (was: {failed['description']})",
           "source": "operator", "actor": actor}
    record_gate_evaluations(paths, [row])
    return row


def silver_fresh_through(paths: LakePaths) -> dt.datetime | None:
    """When the newest event in silver was received (None without silver): how far silver has
    caught up. Reads the ``received_at`` column of the newest two event_date partitions only."""
    table = delta_io.open_table(paths.silver_events)
    if table is None:
        return None
    actions = table.get_add_actions(flatten=True)
    if actions.num_rows == 0:
        return None
    days = sorted(set(actions.column("partition.event_date").to_pylist()))[-2:]
    received = delta_io.read(paths.silver_events, SILVER_EVENTS, columns=["received_at"],
                             partitions=[("event_date", "in", days)])["received_at"]
    return pc.max(received).as_py()


def _failures(paths: LakePaths) -> tuple[dict[dt.date, list[str]], list[str]]:
    """Failed latest evaluations: (per data date, those that apply to every date)."""
    latest = latest_gate_evaluations(paths)
    per_day: dict[dt.date, list[str]] = {}
    everywhere: list[str] = []
    if latest.is_empty():
        return per_day, everywhere
    failed = latest.filter(~pl.col("passed") & (pl.col("severity").is_null() | (pl.col("severity") != "WARN")))
    for row in failed.iter_rows(named=True):
        where = f"{row['asset']}[{row['partition']}]" if row["partition"] else row["asset"]
        reason = f"{where}:{row['gate']} failed"
        if not row["data_dates"]:
            everywhere.append(reason)
        for day in row["data_dates"] or ():
            per_day.setdefault(day, []).append(reason)
    return per_day, everywhere


def untrusted_days(paths: LakePaths, days: Iterable[dt.date], *, fresh_through: dt.datetime | None = None,
                   ) -> dict[dt.date, list[str]]:
    """The days among ``days`` that decisions must not use, each with its reasons (sorted)."""
    days = sorted(set(days))
    if not days:
        return {}
    per_day, everywhere = _failures(paths)
    fresh = fresh_through if fresh_through is not None else silver_fresh_through(paths)
    out: dict[dt.date, list[str]] = {}
    for day in days:
        reasons = [*per_day.get(day, []), *everywhere]
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        if fresh is None or fresh < end - DAY_COMPLETE_SLACK:
            seen = f"silver holds events received up to {fresh:%Y-%m-%d %H:%M} UTC" if fresh else "silver is empty"
            reasons.append(f"stale upstream: {seen}, the day ends {end:%Y-%m-%d %H:%M} UTC")
        if reasons:
            out[day] = sorted(reasons)
    return out


def silver_days(paths: LakePaths) -> list[dt.date]:
    """Every date from the first to the last event_date partition of silver (from the Delta log)."""
    table = delta_io.open_table(paths.silver_events)
    if table is None:
        return []
    present = table.get_add_actions(flatten=True).column("partition.event_date").to_pylist()
    if not present:
        return []
    lo, hi = min(present), max(present)
    return [lo + dt.timedelta(d) for d in range((hi - lo).days + 1)]


def daily_verdicts(paths: LakePaths, days: Iterable[dt.date] | None = None) -> list[DayTrust]:
    """The verdict of :func:`untrusted_days` for each day of silver (or each of ``days``), in order."""
    days = sorted(set(silver_days(paths) if days is None else days))
    bad = untrusted_days(paths, days)
    return [DayTrust(d, d not in bad, tuple(bad.get(d, ()))) for d in days]


def write_daily_trust(paths: LakePaths, days: Iterable[dt.date] | None = None,
                      now: dt.datetime | None = None) -> list[DayTrust]:
    """Write ``observability/data_trust_daily``: :func:`daily_verdicts`, one row per day. Overwritten
    whole (it is small); the warehouse's OEC joins it."""
    verdicts = daily_verdicts(paths, days)
    stamp = now or dt.datetime.now(dt.UTC)
    table = pa.Table.from_pylist(
        [{"date_day": v.day, "is_trusted": v.trusted, "failed_gates": sum("failed" in r for r in v.reasons),
          "untrusted_reasons": "; ".join(v.reasons) or None, "computed_at": stamp} for v in verdicts],
        schema=DAILY_TRUST)
    with table_lock(paths, _LOCK):
        delta_io.overwrite(paths.data_trust_daily, table, operation="daily_trust")
    return verdicts


def verify_daily_trust(paths: LakePaths) -> tuple[bool, str, dict[str, int]]:
    """Check ``observability/data_trust_daily`` as readers (the OEC, the loops) rely on it: one row per
    date; a date is trusted exactly when it has no reason against it; a date with failed gates is never
    trusted. Returns ``(passed, description, figures)``; a table not written yet passes (nothing reads it)."""
    table = delta_io.read(paths.data_trust_daily, DAILY_TRUST)
    if table.num_rows == 0:
        return True, "not written yet (the first warehouse build writes it)", {"rows": 0}
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    problems: list[str] = []
    doubled = frame.filter(pl.col("date_day").is_duplicated())["date_day"].unique().sort().to_list()
    if doubled:
        problems.append(f"{len(doubled)} date(s) with more than one row, e.g. {doubled[0]}")
    inconsistent = frame.filter(pl.col("is_trusted") == pl.col("untrusted_reasons").is_not_null())
    if inconsistent.height:
        problems.append(f"{inconsistent.height} date(s) whose trust disagrees with their reasons, "
                        f"e.g. {inconsistent['date_day'][0]}")
    trusted_failed = frame.filter(pl.col("is_trusted") & (pl.col("failed_gates") > 0))
    if trusted_failed.height:
        problems.append(f"{trusted_failed.height} trusted date(s) with failed gates, "
                        f"e.g. {trusted_failed['date_day'][0]}")
    figures = {"rows": frame.height, "untrusted": int((~frame["is_trusted"]).sum()), "problems": len(problems)}
    if problems:
        fix = " — rebuild the warehouse (it rewrites the table from the gate log)"
        return False, "; ".join(problems) + fix, figures
    return True, f"{frame.height} dates, {figures['untrusted']} untrusted, each with its reasons", figures

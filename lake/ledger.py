"""The ingestion ledger: per landing partition, where every landed line went — and a check.

    lines_landed = bronze_rows + quarantined + consent_dropped + duplicates_dropped

``bronze_rows`` and ``quarantined`` are counted in the tables themselves (never trusted from the
writer's memory), so the ledger check can catch a lost or doubled row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from lake import delta_io
from lake.landing import iter_lines, list_landing_files, parse_partition_key
from lake.paths import LakePaths
from lake.schemas import BRONZE_EVENTS, BRONZE_QUARANTINE, INGESTION_LEDGER

__all__ = ["LedgerEntry", "TableCounts", "Reconciliation", "count_tables", "write_entry", "read_entry",
           "read_ledger", "verify_partition", "count_landed_lines"]


@dataclass(frozen=True)
class TableCounts:
    """What the tables hold for one landing partition."""

    bronze_rows: int
    bronze_distinct_ids: int
    quarantined_open: int
    replayed_duplicates: int
    quarantined_by_reason: dict[str, int]


@dataclass
class LedgerEntry:
    landing_partition: str
    lines_landed: int
    bronze_rows: int
    quarantined: int
    consent_dropped: int
    duplicates_at_ingest: int
    replayed_duplicates: int = 0
    held_for_audit: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    event_dates: list[date] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    plan_version: str = ""
    gate_status: str = "passed"
    gate_summary: str = ""

    @property
    def duplicates_dropped(self) -> int:
        return self.duplicates_at_ingest + self.replayed_duplicates

    @property
    def reconciled(self) -> bool:
        accounted = self.bronze_rows + self.quarantined + self.consent_dropped + self.duplicates_dropped
        return self.held_for_audit == 0 and accounted == self.lines_landed

    def to_row(self) -> dict:
        return {
            "landing_partition": self.landing_partition,
            "lines_landed": self.lines_landed,
            "bronze_rows": self.bronze_rows,
            "quarantined": self.quarantined,
            "consent_dropped": self.consent_dropped,
            "duplicates_dropped": self.duplicates_dropped,
            "duplicates_at_ingest": self.duplicates_at_ingest,
            "held_for_audit": self.held_for_audit,
            "reconciled": self.reconciled,
            "quarantined_by_reason": json.dumps(self.quarantined_by_reason, sort_keys=True),
            "event_dates": sorted(set(self.event_dates)),
            "files": self.files,
            "plan_version": self.plan_version,
            "gate_status": self.gate_status,
            "gate_summary": self.gate_summary,
            "updated_at": datetime.now(timezone.utc),
        }

    def summary(self) -> dict:
        """The figures a person wants, as plain values (CLI and Dagster metadata)."""
        return {
            "lines_landed": self.lines_landed,
            "bronze_rows": self.bronze_rows,
            "quarantined": self.quarantined,
            "consent_dropped": self.consent_dropped,
            "duplicates_dropped": self.duplicates_dropped,
            "held_for_audit": self.held_for_audit,
            "reconciled": self.reconciled,
        }


def _partition_filter(key: str) -> str:
    parse_partition_key(key)  # validated: only then is it used inside a predicate
    return f"landing_partition = '{key}'"


def count_tables(paths: LakePaths, key: str, event_dates: list[date]) -> TableCounts:
    """Count, in the tables, the rows that came from landing partition ``key``."""
    bronze = delta_io.read(
        paths.bronze_events, BRONZE_EVENTS, columns=["event_id"],
        filter=pc.field("event_date").isin(pa.array(sorted(set(event_dates)), pa.date32()))
        & (pc.field("_landing_partition") == key),
    ) if event_dates else BRONZE_EVENTS.empty_table().select(["event_id"])
    day = parse_partition_key(key).date()
    quar = delta_io.read(
        paths.bronze_quarantine, BRONZE_QUARANTINE, columns=["violation_type", "resolution"],
        filter=(pc.field("landing_date") == pa.scalar(day, pa.date32())) & (pc.field("landing_partition") == key),
    )
    open_rows = quar.filter(pc.is_null(quar["resolution"]))
    by_reason: dict[str, int] = {}
    for reason in open_rows["violation_type"].to_pylist():
        by_reason[reason] = by_reason.get(reason, 0) + 1
    replayed_dup = pc.sum(pc.equal(quar["resolution"], "replayed_duplicate")).as_py() or 0
    return TableCounts(
        bronze_rows=bronze.num_rows,
        bronze_distinct_ids=pc.count_distinct(bronze["event_id"]).as_py() if bronze.num_rows else 0,
        quarantined_open=open_rows.num_rows,
        replayed_duplicates=int(replayed_dup),
        quarantined_by_reason=by_reason,
    )


def write_entry(paths: LakePaths, entry: LedgerEntry) -> None:
    """Insert or replace the ledger row of one partition (one atomic Delta commit)."""
    row = pa.Table.from_pylist([entry.to_row()], schema=INGESTION_LEDGER)
    delta_io.replace_where(paths.ingestion_ledger, row, _partition_filter(entry.landing_partition),
                           operation="ledger", metadata={"partition": entry.landing_partition})


def read_ledger(paths: LakePaths, keys: list[str] | None = None) -> pa.Table:
    filt = pc.field("landing_partition").isin(keys) if keys is not None else None
    return delta_io.read(paths.ingestion_ledger, INGESTION_LEDGER, filter=filt)


def read_entry(paths: LakePaths, key: str) -> LedgerEntry | None:
    rows = read_ledger(paths, [key]).to_pylist()
    if not rows:
        return None
    r = rows[0]
    return LedgerEntry(
        landing_partition=r["landing_partition"], lines_landed=r["lines_landed"], bronze_rows=r["bronze_rows"],
        quarantined=r["quarantined"], consent_dropped=r["consent_dropped"],
        duplicates_at_ingest=r["duplicates_at_ingest"],
        replayed_duplicates=r["duplicates_dropped"] - r["duplicates_at_ingest"],
        held_for_audit=r["held_for_audit"], quarantined_by_reason=json.loads(r["quarantined_by_reason"]),
        event_dates=list(r["event_dates"] or []), files=list(r["files"] or []), plan_version=r["plan_version"],
        gate_status=r["gate_status"], gate_summary=r["gate_summary"],
    )


def count_landed_lines(paths: LakePaths, key: str) -> tuple[int, list[str]]:
    """Non-blank lines in the landing files of ``key`` (counted afresh from the files)."""
    files = list_landing_files(paths, key)
    n = sum(1 for f in files for _, raw in iter_lines(paths, f) if raw.strip())
    return n, [f.relative for f in files]


@dataclass(frozen=True)
class Reconciliation:
    partition: str
    ok: bool
    problems: tuple[str, ...]
    figures: dict

    @property
    def detail(self) -> str:
        return "; ".join(self.problems) if self.problems else "reconciled"


def verify_partition(paths: LakePaths, key: str) -> Reconciliation:
    """Recount a partition from the landing files and the tables, and compare with its ledger."""
    entry = read_entry(paths, key)
    if entry is None:
        return Reconciliation(key, False, ("no ledger entry: the partition was never ingested",), {})
    landed, _ = count_landed_lines(paths, key)
    counts = count_tables(paths, key, entry.event_dates)
    problems = []
    if landed != entry.lines_landed:
        problems.append(f"landing files hold {landed} lines, the ledger says {entry.lines_landed} (files changed since ingestion?)")
    if counts.bronze_rows != entry.bronze_rows:
        problems.append(f"bronze holds {counts.bronze_rows} rows of this partition, the ledger says {entry.bronze_rows}")
    if counts.bronze_distinct_ids != counts.bronze_rows:
        problems.append(f"bronze holds {counts.bronze_rows - counts.bronze_distinct_ids} doubled event_ids from this partition")
    if counts.quarantined_open != entry.quarantined:
        problems.append(f"quarantine holds {counts.quarantined_open} open rows of this partition, the ledger says {entry.quarantined}")
    if entry.held_for_audit:
        problems.append(f"{entry.held_for_audit} rows held by a failed gate ({entry.gate_summary})")
    accounted = counts.bronze_rows + counts.quarantined_open + entry.consent_dropped + entry.duplicates_at_ingest + counts.replayed_duplicates
    if accounted != landed:
        problems.append(
            f"{landed} lines landed but {accounted} accounted for "
            f"(bronze {counts.bronze_rows} + quarantined {counts.quarantined_open} + consent {entry.consent_dropped} "
            f"+ duplicates {entry.duplicates_at_ingest + counts.replayed_duplicates})"
        )
    figures = {"lines_landed": landed, "bronze_rows": counts.bronze_rows, "quarantined": counts.quarantined_open,
               "consent_dropped": entry.consent_dropped,
               "duplicates_dropped": entry.duplicates_at_ingest + counts.replayed_duplicates,
               "held_for_audit": entry.held_for_audit}
    return Reconciliation(key, not problems, tuple(problems), figures)


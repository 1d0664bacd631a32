"""The ingestion ledger: per landing partition, where every landed line went — and a check.

    lines_landed = bronze_rows + quarantined + consent_dropped + duplicates_dropped

The writer records what it classified; :func:`verify_partition` recounts the landing files and
the tables independently, so a lost or doubled row (a crash, a foreign writer, a bug) fails it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc

from lake import delta_io
from lake.landing import iter_lines, list_landing_files, parse_partition_key
from lake.paths import LakePaths
from lake.schemas import BRONZE_EVENTS, INGESTION_LEDGER

__all__ = ["LedgerEntry", "TableCounts", "Reconciliation", "count_tables", "write_entry", "read_entry",
           "read_ledger", "verify_partition", "count_landed_lines"]


@dataclass(frozen=True)
class TableCounts:
    """What the tables hold for one landing partition."""

    bronze_rows: int
    bronze_distinct_ids: int
    quarantined_open: int


@dataclass
class LedgerEntry:
    landing_partition: str
    lines_landed: int
    bronze_rows: int
    quarantined: int
    consent_dropped: int
    duplicates_dropped: int
    held_for_audit: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    event_dates: list[date] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    plan_version: str = ""
    gate_status: str = "passed"
    gate_summary: str = ""

    @property
    def reconciled(self) -> bool:
        accounted = self.bronze_rows + self.quarantined + self.consent_dropped + self.duplicates_dropped
        return self.held_for_audit == 0 and accounted == self.lines_landed

    def to_row(self) -> dict:
        return {
            "landing_partition": self.landing_partition,
            "landing_date": parse_partition_key(self.landing_partition).date(),
            "lines_landed": self.lines_landed,
            "bronze_rows": self.bronze_rows,
            "quarantined": self.quarantined,
            "consent_dropped": self.consent_dropped,
            "duplicates_dropped": self.duplicates_dropped,
            "held_for_audit": self.held_for_audit,
            "reconciled": self.reconciled,
            "quarantined_by_reason": json.dumps(self.quarantined_by_reason, sort_keys=True),
            "event_dates": sorted(set(self.event_dates)),
            "files": self.files,
            "plan_version": self.plan_version,
            "gate_status": self.gate_status,
            "gate_summary": self.gate_summary,
            "updated_at": datetime.now(UTC),
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


def _partition_predicate(key: str) -> str:
    day = parse_partition_key(key).date()  # validated: only then is it used inside a predicate
    return f"landing_date = '{day.isoformat()}' AND landing_partition = '{key}'"


def count_tables(paths: LakePaths, key: str, event_dates: list[date]) -> TableCounts:
    """Count, in the tables, the rows that came from landing partition ``key``."""
    bronze = delta_io.read(
        paths.bronze_events, BRONZE_EVENTS, columns=["event_id"],
        partitions=[("event_date", "in", sorted(set(event_dates)))], filter=pc.field("_landing_partition") == key,
    ) if event_dates else BRONZE_EVENTS.empty_table().select(["event_id"])
    day = parse_partition_key(key).date()
    open_rows = delta_io.row_count(
        paths.bronze_quarantine, partitions=[("landing_date", "=", day)],
        filter=(pc.field("landing_partition") == key) & pc.is_null(pc.field("resolution")),
    )
    return TableCounts(
        bronze_rows=bronze.num_rows,
        bronze_distinct_ids=pc.count_distinct(bronze["event_id"]).as_py() if bronze.num_rows else 0,
        quarantined_open=open_rows,
    )


def write_entry(paths: LakePaths, entry: LedgerEntry) -> None:
    """Insert or replace the ledger row of one partition (one atomic Delta commit)."""
    row = pa.Table.from_pylist([entry.to_row()], schema=INGESTION_LEDGER)
    delta_io.replace_where(paths.ingestion_ledger, row, _partition_predicate(entry.landing_partition),
                           partition_by=["landing_date"], operation="ledger",
                           metadata={"partition": entry.landing_partition})


def read_ledger(paths: LakePaths, keys: list[str] | None = None) -> pa.Table:
    """Ledger rows (all, or of ``keys``; only their landing_date partitions are opened)."""
    if keys is None:
        return delta_io.read(paths.ingestion_ledger, INGESTION_LEDGER)
    days = sorted({parse_partition_key(k).date() for k in keys})
    return delta_io.read(paths.ingestion_ledger, INGESTION_LEDGER, partitions=[("landing_date", "in", days)],
                         filter=pc.field("landing_partition").isin(keys))


def read_entry(paths: LakePaths, key: str) -> LedgerEntry | None:
    rows = read_ledger(paths, [key]).to_pylist()
    if not rows:
        return None
    r = rows[0]
    return LedgerEntry(
        landing_partition=r["landing_partition"], lines_landed=r["lines_landed"], bronze_rows=r["bronze_rows"],
        quarantined=r["quarantined"], consent_dropped=r["consent_dropped"],
        duplicates_dropped=r["duplicates_dropped"], held_for_audit=r["held_for_audit"],
        quarantined_by_reason=json.loads(r["quarantined_by_reason"]),
        event_dates=list(r["event_dates"] or []), files=list(r["files"] or []), plan_version=r["plan_version"],
        gate_status=r["gate_status"], gate_summary=r["gate_summary"],
    )


def count_landed_lines(paths: LakePaths, key: str) -> tuple[int, list[str]]:
    """Lines in the landing files of ``key`` (counted afresh from the files), as ingestion counts them:
    non-blank ones, and every line longer than ``GROWTHLAKE_MAX_LINE_BYTES`` (quarantined unread)."""
    files = list_landing_files(paths, key)
    limit = paths.settings.max_line_bytes
    n = sum(1 for f in files for _, raw in iter_lines(paths, f, max_line_bytes=limit)
            if len(raw) > limit or raw.strip())
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
        problems.append(f"landing files hold {landed} lines, the ledger says {entry.lines_landed} "
                        "(files changed since ingestion?)")
    if counts.bronze_rows != entry.bronze_rows:
        problems.append(f"bronze holds {counts.bronze_rows} rows of this partition, "
                        f"the ledger says {entry.bronze_rows}")
    if counts.bronze_distinct_ids != counts.bronze_rows:
        problems.append(f"bronze holds {counts.bronze_rows - counts.bronze_distinct_ids} doubled event_ids "
                        "from this partition")
    if counts.quarantined_open != entry.quarantined:
        problems.append(f"quarantine holds {counts.quarantined_open} open rows of this partition, "
                        f"the ledger says {entry.quarantined}")
    if entry.held_for_audit:
        problems.append(f"{entry.held_for_audit} rows held by a failed gate ({entry.gate_summary})")
    accounted = counts.bronze_rows + counts.quarantined_open + entry.consent_dropped + entry.duplicates_dropped
    if accounted != landed:
        problems.append(
            f"{landed} lines landed but {accounted} accounted for "
            f"(bronze {counts.bronze_rows} + quarantined {counts.quarantined_open} + consent {entry.consent_dropped} "
            f"+ duplicates {entry.duplicates_dropped})"
        )
    figures = {"lines_landed": landed, "bronze_rows": counts.bronze_rows, "quarantined": counts.quarantined_open,
               "consent_dropped": entry.consent_dropped, "duplicates_dropped": entry.duplicates_dropped,
               "held_for_audit": entry.held_for_audit}
    return Reconciliation(key, not problems, tuple(problems), figures)


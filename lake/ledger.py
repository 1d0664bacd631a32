"""The ingestion ledger: per landing partition, where every landed line went — and a check.

    lines_landed = bronze_rows + quarantined + consent_dropped + duplicates_dropped

The writer records what it classified; :func:`verify_partition` recounts the landing files and
the tables independently, so a lost or doubled row (a crash, a foreign writer, a bug) fails it.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import CommitFailedError

from lake import delta_io
from lake.landing import iter_lines, list_landing_files, parse_partition_key
from lake.paths import LakePaths
from lake.schemas import BRONZE_EVENTS, BRONZE_QUARANTINE, INGESTION_LEDGER

__all__ = ["LedgerEntry", "TableCounts", "Reconciliation", "count_tables", "count_tables_of", "write_entry",
           "write_entries", "read_entry", "read_entries", "read_ledger", "verify_partition", "verify_partitions",
           "count_landed_lines"]


_LEDGER_ATTEMPTS = 8  # ledger commits tried before a conflict with other machines' writers is raised


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


def _partitions_predicate(keys: list[str]) -> str:
    days = sorted({parse_partition_key(k).date() for k in keys})  # validated: only then used in a predicate
    day_list = ", ".join(f"'{d.isoformat()}'" for d in days)
    key_list = ", ".join(f"'{k}'" for k in sorted(set(keys)))
    return f"landing_date IN ({day_list}) AND landing_partition IN ({key_list})"


def count_tables(paths: LakePaths, key: str, event_dates: list[date]) -> TableCounts:
    """Count, in the tables, the rows that came from landing partition ``key``."""
    return count_tables_of(paths, {key: event_dates})[key]


def count_tables_of(paths: LakePaths, event_dates: dict[str, list[date]]) -> dict[str, TableCounts]:
    """Count, in the tables, the rows that came from each landing partition of ``event_dates``
    (hour key -> the event dates its rows carry): one read of bronze and one of quarantine for all."""
    keys = sorted(event_dates)
    for key in keys:
        parse_partition_key(key)
    dates = sorted({d for ds in event_dates.values() for d in ds})
    bronze = delta_io.read(
        paths.bronze_events, BRONZE_EVENTS, columns=["event_id", "_landing_partition"],
        partitions=[("event_date", "in", dates)], filter=pc.field("_landing_partition").isin(keys),
    ) if dates else BRONZE_EVENTS.empty_table().select(["event_id", "_landing_partition"])
    days = sorted({parse_partition_key(k).date() for k in keys})
    quarantine = delta_io.read(
        paths.bronze_quarantine, BRONZE_QUARANTINE, columns=["landing_partition"],
        partitions=[("landing_date", "in", days)],
        filter=pc.field("landing_partition").isin(keys) & pc.is_null(pc.field("resolution")),
    ) if keys else BRONZE_QUARANTINE.empty_table().select(["landing_partition"])
    per_hour = bronze.group_by("_landing_partition").aggregate(
        [("event_id", "count"), ("event_id", "count_distinct")]).to_pylist() if bronze.num_rows else []
    rows = {r["_landing_partition"]: (r["event_id_count"], r["event_id_count_distinct"]) for r in per_hour}
    open_rows = {r["landing_partition"]: r["count_all"] for r in
                 quarantine.group_by("landing_partition").aggregate([([], "count_all")]).to_pylist()
                 } if quarantine.num_rows else {}
    return {key: TableCounts(bronze_rows=rows.get(key, (0, 0))[0], bronze_distinct_ids=rows.get(key, (0, 0))[1],
                             quarantined_open=open_rows.get(key, 0))
            for key in keys}


def write_entry(paths: LakePaths, entry: LedgerEntry) -> None:
    """Insert or replace the ledger row of one partition (one atomic Delta commit)."""
    write_entries(paths, [entry])


def write_entries(paths: LakePaths, entries: list[LedgerEntry]) -> int:
    """Insert or replace the ledger rows of several partitions in one atomic Delta commit.

    A row equal to the stored one (all but ``updated_at``) is not rewritten, so a rerun that
    changes nothing commits nothing.

    Returns:
        The rows written (0: nothing changed, no commit).
    """
    if not entries:
        return 0
    rows = {e.landing_partition: e.to_row() for e in entries}
    for attempt in range(1, _LEDGER_ATTEMPTS + 1):
        stored = {r["landing_partition"]: r for r in read_ledger(paths, sorted(rows)).to_pylist()}
        changed = [row for key, row in sorted(rows.items())
                   if {k: v for k, v in row.items() if k != "updated_at"}
                   != {k: v for k, v in stored.get(key, {}).items() if k != "updated_at"}]
        if not changed:
            return 0
        keys = [row["landing_partition"] for row in changed]
        table = pa.Table.from_pylist(changed, schema=INGESTION_LEDGER)
        try:
            delta_io.replace_where(paths.ingestion_ledger, table, _partitions_predicate(keys),
                                   partition_by=["landing_date"], operation="ledger", create_empty=True,
                                   metadata={"partition": keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}",
                                             "partitions": len(keys)})
            return len(changed)
        except CommitFailedError:
            # Another machine wrote ledger rows of the same days meanwhile (the replace is conflict-
            # checked): read them again. An hour's figures do not depend on which writer published
            # its rows, so a concurrent writer of the same hour wrote the same figures.
            if attempt == _LEDGER_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.02, 0.2) * attempt)
    return 0


def read_ledger(paths: LakePaths, keys: list[str] | None = None) -> pa.Table:
    """Ledger rows (all, or of ``keys``; only their landing_date partitions are opened)."""
    if keys is None:
        return delta_io.read(paths.ingestion_ledger, INGESTION_LEDGER)
    days = sorted({parse_partition_key(k).date() for k in keys})
    return delta_io.read(paths.ingestion_ledger, INGESTION_LEDGER, partitions=[("landing_date", "in", days)],
                         filter=pc.field("landing_partition").isin(keys))


def read_entry(paths: LakePaths, key: str) -> LedgerEntry | None:
    """The ledger entry of one landing hour (None: never ingested)."""
    return read_entries(paths, [key]).get(key)


def read_entries(paths: LakePaths, keys: list[str]) -> dict[str, LedgerEntry]:
    """The ledger entries of ``keys`` (one read), by hour; hours never ingested are left out."""
    return {r["landing_partition"]: _entry(r) for r in read_ledger(paths, keys).to_pylist()} if keys else {}


def _entry(r: dict) -> LedgerEntry:
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
    return verify_partitions(paths, [key])[key]


def verify_partitions(paths: LakePaths, keys: list[str]) -> dict[str, Reconciliation]:
    """Recount partitions from their landing files and the tables, and compare each with its ledger.

    Each hour is judged on its own; the tables are read once for all of them.
    """
    entries = read_entries(paths, keys)
    counted = count_tables_of(paths, {k: e.event_dates for k, e in entries.items()})
    out: dict[str, Reconciliation] = {}
    for key in keys:
        entry = entries.get(key)
        if entry is None:
            out[key] = Reconciliation(key, False, ("no ledger entry: the partition was never ingested",), {})
            continue
        landed, _ = count_landed_lines(paths, key)
        out[key] = _reconcile(key, entry, landed, counted[key])
    return out


def _reconcile(key: str, entry: LedgerEntry, landed: int, counts: TableCounts) -> Reconciliation:
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

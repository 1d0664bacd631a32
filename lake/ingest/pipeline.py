"""Landing hour -> bronze: validate, pseudonymize, drop unconsented, dedup, audit, publish.

Exactly once: under the bronze writer lock, a batch is classified against what the tables
already hold (an event_id already in bronze from the *same* landed line is "already published";
from another line it is a duplicate), audited (write-audit-publish: the gate runs on the batch
before anything becomes visible) and appended in one Delta commit per table. A rerun, an
overlapping backfill, or a restart after ``kill -9`` between any two commits therefore leaves
every landed line exactly once in bronze or quarantine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake import delta_io
from lake._failpoints import failpoint
from lake.contracts.plan import TrackingPlan
from lake.erasure.requests import record_requests
from lake.ingest.normalize import NormalizedBatch, event_time_window, partition_date
from lake.ingest.parallel import normalize_files, runs_in_parallel
from lake.landing import list_landing_files, parse_partition_key
from lake.ledger import LedgerEntry, write_entry
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.pii import PiiMasker
from lake.schemas import BRONZE_EVENTS, BRONZE_QUARANTINE

__all__ = ["GateOutcome", "Auditor", "IngestionResult", "ingest_partition", "ingest_locked", "gx_auditor",
           "classify_against_bronze", "bronze_gate_parameters", "BRONZE_LOCK"]

BRONZE_LOCK = "bronze"
_STAGER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="growthlake-stage")


class GateOutcome(Protocol):
    @property
    def success(self) -> bool: ...

    def summary(self) -> str: ...
    def to_metadata(self) -> dict: ...


Auditor = Callable[[str, pa.Table, dict[str, Any]], GateOutcome]


def gx_auditor(suite: str, batch: pa.Table, parameters: dict[str, Any]) -> GateOutcome:
    """Validate a batch with its Great Expectations suite (GX is imported lazily)."""
    from expectations import validate

    return validate(batch, suite, parameters=parameters)


def bronze_gate_parameters(plan: TrackingPlan, key: str) -> dict[str, Any]:
    """Runtime parameters of the ``bronze_events`` suite for one landing hour."""
    import pandas as pd

    lo, hi = event_time_window(plan, key)
    return {"planned_events": plan.event_names, "min_event_ts": pd.Timestamp(lo), "max_event_ts": pd.Timestamp(hi)}


@dataclass
class IngestionResult:
    """What one ingestion of a landing partition did (the ledger entry plus run figures)."""

    partition: str
    ledger: LedgerEntry
    bronze_appended: int = 0
    quarantine_appended: int = 0
    gates: dict[str, dict] = field(default_factory=dict)  # suite -> {success, summary, metadata}
    held_at: str | None = None
    elapsed_s: float = 0.0
    python_fallback_lines: int = 0  # lines the column-wise normalizer left to the per-line reference

    @property
    def published(self) -> bool:
        return self.held_at is None

    @property
    def failed_gates(self) -> list[str]:
        return [name for name, g in self.gates.items() if not g["success"]]


def classify_against_bronze(paths: LakePaths, batch: pa.Table) -> tuple[pa.Table, int, int]:
    """Split candidate rows into (rows to publish, lines already published, duplicates).

    Per event_id: if bronze holds it, the candidate from that very line is "already published"
    and every other copy is a duplicate; if not, the first copy in (file, line) order is new and
    the others are duplicates. Only the event_date partitions the batch touches are read: a
    redelivered event carries its original timestamp, so its copy lives in the same partition.
    """
    if batch.num_rows == 0:
        return batch, 0, 0
    # Only stored copies of the batch's ids are materialized: the scan evaluates the membership
    # test column-wise, instead of handing every id of those days to a join.
    existing = delta_io.read(
        paths.bronze_events, BRONZE_EVENTS, columns=["event_id", "_source_file", "_line_number"],
        partitions=[("event_date", "in", pc.unique(batch["event_date"]).to_pylist())],
        filter=pc.field("event_id").isin(pc.unique(batch["event_id"])),
    )
    cand = pl.from_arrow(batch.select(["event_id", "_source_file", "_line_number"]))
    assert isinstance(cand, pl.DataFrame)
    first_copy = cand["event_id"].is_first_distinct()
    if existing.num_rows == 0:
        present = 0
        new_mask = first_copy
    else:
        have = pl.from_arrow(existing)
        assert isinstance(have, pl.DataFrame)
        have = have.rename({"_source_file": "_f", "_line_number": "_l"}).unique("event_id", keep="first")
        joined = cand.join(have, on="event_id", how="left", maintain_order="left")
        same_line = ((joined["_f"] == joined["_source_file"]) & (joined["_l"] == joined["_line_number"])
                     ).fill_null(False)
        present = int(same_line.sum())
        new_mask = joined["_f"].is_null() & first_copy
    new_count = int(new_mask.sum())
    if new_count == batch.num_rows:
        return batch, 0, 0
    return batch.filter(new_mask.to_arrow()), present, batch.num_rows - new_count - present


def _new_quarantine_rows(paths: LakePaths, key: str, quarantine: pa.Table) -> tuple[pa.Table, int]:
    """Drop quarantine rows an earlier run of this partition already wrote (same file and line)."""
    if quarantine.num_rows == 0:
        return quarantine, 0
    existing = delta_io.read(
        paths.bronze_quarantine, BRONZE_QUARANTINE, columns=["source_file", "line_number"],
        partitions=[("landing_date", "=", partition_date(key))], filter=pc.field("landing_partition") == key,
    )
    if existing.num_rows == 0:
        return quarantine, 0
    cand, have = pl.from_arrow(quarantine.select(["source_file", "line_number"])), pl.from_arrow(existing)
    assert isinstance(cand, pl.DataFrame) and isinstance(have, pl.DataFrame)
    keep = cand.with_row_index("_i").join(have.unique(), on=["source_file", "line_number"], how="anti")["_i"].sort()
    return quarantine.take(keep.to_arrow()), quarantine.num_rows - len(keep)


def _hold(paths: LakePaths, key: str, new_bronze: pa.Table, new_quar: pa.Table) -> str:
    """Keep a rejected batch for inspection, outside every table readers use."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    folder = f"{paths.audit_holds}/{key.replace(':', '')}/{stamp}"
    if paths.is_local:
        Path(folder).mkdir(parents=True, exist_ok=True)
    pq.write_table(new_bronze, f"{folder}/bronze_events.parquet")
    pq.write_table(new_quar, f"{folder}/bronze_quarantine.parquet")
    return folder


def normalize_partition(paths: LakePaths, key: str, *, plan: TrackingPlan,
                        masker: PiiMasker) -> tuple[NormalizedBatch, list[str]]:
    """Read every batch file of a landing hour through the contract (no table is touched)."""
    files = list_landing_files(paths, key)
    return normalize_files(paths, key, files, plan=plan, masker=masker), [f.relative for f in files]


def _warm_up_gates() -> None:
    from expectations import warm_up

    warm_up()


def ingest_locked(paths: LakePaths, key: str, *, plan: TrackingPlan, masker: PiiMasker,
                  auditor: Auditor = gx_auditor) -> IngestionResult:
    """:func:`ingest_partition` for a caller that already holds the bronze writer lock."""
    started = time.perf_counter()
    if auditor is gx_auditor and runs_in_parallel(list_landing_files(paths, key)):
        # Workers do the parsing; this process would only wait, so it imports GX meanwhile.
        _STAGER.submit(_warm_up_gates)
    batch, files = normalize_partition(paths, key, plan=plan, masker=masker)
    new_bronze, present, table_dups = classify_against_bronze(paths, batch.bronze)
    new_quar, quar_present = _new_quarantine_rows(paths, key, batch.quarantine)

    # Write-audit-publish: the bronze files are written (staged, invisible) while the gates audit
    # the batch; only a passing batch is published, in one commit.
    staging = None
    if paths.is_local and new_bronze.num_rows:
        staging = _STAGER.submit(delta_io.stage, paths.bronze_events, new_bronze, partition_by=["event_date"])
    gates: dict[str, dict] = {}
    try:
        if new_bronze.num_rows:
            audit_view = new_bronze.append_column("identity_key",
                                                  pc.coalesce(new_bronze["user_id"], new_bronze["anonymous_id"]))
            out = auditor("bronze_events", audit_view, bronze_gate_parameters(plan, key))
            gates["bronze_events"] = {"success": out.success, "summary": out.summary(), "metadata": out.to_metadata()}
        if new_quar.num_rows:
            out = auditor("bronze_quarantine", new_quar, {})
            gates["bronze_quarantine"] = {"success": out.success, "summary": out.summary(),
                                          "metadata": out.to_metadata()}
    finally:
        staged = staging.result() if staging is not None else None
    failed = [g for g in gates.values() if not g["success"]]

    entry = LedgerEntry(
        landing_partition=key, lines_landed=batch.lines_landed,
        bronze_rows=present + new_bronze.num_rows, quarantined=quar_present + new_quar.num_rows,
        consent_dropped=batch.consent_dropped, duplicates_dropped=table_dups,
        quarantined_by_reason=batch.quarantined_by_reason,
        event_dates=pc.unique(batch.bronze["event_date"]).to_pylist() if batch.bronze.num_rows else [],
        files=files, plan_version=plan.version,
    )
    result = IngestionResult(partition=key, ledger=entry, gates=gates,
                             python_fallback_lines=batch.python_fallback_lines)
    if failed:
        # Nothing of a rejected batch becomes visible; it is kept aside for inspection.
        if staged is not None:
            delta_io.discard(staged)
        result.held_at = _hold(paths, key, new_bronze, new_quar)
        entry.bronze_rows, entry.quarantined = present, quar_present
        entry.held_for_audit = new_bronze.num_rows + new_quar.num_rows
        entry.gate_status = "failed"
        entry.gate_summary = " | ".join(g["summary"] for g in failed)
    else:
        entry.gate_summary = "; ".join(f"{name}: passed" for name in gates) or "nothing new to publish"
        if staged is not None:
            delta_io.publish(staged, operation="ingest", metadata={"partition": key})
        else:
            delta_io.append(paths.bronze_events, new_bronze, partition_by=["event_date"], operation="ingest",
                            metadata={"partition": key})
        failpoint("after_bronze_commit")
        delta_io.append(paths.bronze_quarantine, new_quar, partition_by=["landing_date"], operation="ingest",
                        metadata={"partition": key})
        failpoint("after_quarantine_commit")
        result.bronze_appended, result.quarantine_appended = new_bronze.num_rows, new_quar.num_rows
    # A withdrawal of analytics consent is a right-to-erasure request: kept (raw ids) until processed.
    record_requests(paths, batch.revocations)
    write_entry(paths, entry)
    result.elapsed_s = time.perf_counter() - started
    return result


def ingest_partition(paths: LakePaths, key: str, *, plan: TrackingPlan, masker: PiiMasker,
                     auditor: Auditor = gx_auditor) -> IngestionResult:
    """Ingest one landing hour into ``bronze/events`` and ``bronze/quarantine``, exactly once.

    Args:
        paths: the lake's locations.
        key: the hourly partition key, e.g. ``2026-11-02-05:00``.
        plan: the tracking plan to enforce.
        masker: the keyed pseudonymizer for IPs and PII.
        auditor: the gate run before publishing (default: the Great Expectations suites).

    Returns:
        The result, whose ``ledger`` says where every landed line went. When a gate fails,
        nothing is published, the batch is kept at ``result.held_at`` and the ledger is marked
        unreconciled; the caller decides how to fail (the Dagster asset fails its blocking check).
    """
    parse_partition_key(key)
    with table_lock(paths, BRONZE_LOCK):
        return ingest_locked(paths, key, plan=plan, masker=masker, auditor=auditor)

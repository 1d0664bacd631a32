"""Replay quarantine: re-validate open quarantined lines against the current plan, exactly once.

Lines that now pass move into bronze (keeping their original source file, line and landing
partition); their quarantine rows are marked ``replayed`` (or ``replayed_duplicate`` when the
event is already in bronze from another line). Steps, under the bronze writer lock:

1. append the passing rows to bronze — skipping rows a crashed earlier replay already appended
   (same event_id from the same line);
2. rewrite each affected partition's quarantine slice with the resolutions (one commit each);
3. re-derive each affected partition's ledger entry by ingesting it again (idempotent: every
   line is already where it belongs, so nothing is written but the ledger).

A crash between steps 1 and 2 is repaired by running replay again; between 2 and 3, by
re-materializing the partition (the ledger check points at it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from lake import delta_io
from lake._failpoints import failpoint
from lake.contracts.plan import TrackingPlan
from lake.ingest.normalize import Normalizer, partition_date
from lake.ingest.pipeline import BRONZE_LOCK, Auditor, classify_against_bronze, gx_auditor, ingest_locked
from lake.landing import parse_partition_key
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.pii import PiiMasker
from lake.schemas import BRONZE_QUARANTINE

__all__ = ["ReplayResult", "replay_quarantine"]


@dataclass
class ReplayResult:
    examined: int = 0
    replayed: int = 0
    duplicates: int = 0
    still_failing: dict[str, int] = field(default_factory=dict)
    partitions: list[str] = field(default_factory=list)
    gate_failed: str | None = None


def replay_quarantine(paths: LakePaths, *, plan: TrackingPlan, masker: PiiMasker,
                      partitions: list[str] | None = None, auditor: Auditor = gx_auditor) -> ReplayResult:
    """Move quarantined lines that pass the current plan into bronze, exactly once.

    Args:
        paths: the lake's locations.
        plan: the (fixed) tracking plan to re-validate against.
        masker: the keyed pseudonymizer (PII masked at first ingestion is not hashed twice).
        partitions: only these landing partitions (default: all with open rows).
        auditor: the bronze gate applied before publishing.
    """
    result = ReplayResult()
    with table_lock(paths, BRONZE_LOCK):
        filt = pc.is_null(pc.field("resolution"))
        if partitions:
            for key in partitions:
                parse_partition_key(key)
            filt = filt & pc.field("landing_partition").isin(partitions)
        open_rows = delta_io.read(paths.bronze_quarantine, BRONZE_QUARANTINE, filter=filt)
        result.examined = open_rows.num_rows
        if open_rows.num_rows == 0:
            return result

        norm = Normalizer(plan, masker, ingested_at=datetime.now(UTC))
        passing: dict[tuple[str, int], str] = {}  # (source_file, line) -> landing partition
        for row in open_rows.to_pylist():
            if row["violation_type"] == "line_too_long":  # raw_line is only a prefix: nothing to replay
                result.still_failing["line_too_long"] = result.still_failing.get("line_too_long", 0) + 1
                continue
            try:
                ev = orjson.loads(row["raw_line"])
            except orjson.JSONDecodeError:
                ev = None
            if type(ev) is not dict:
                result.still_failing["malformed_json"] = result.still_failing.get("malformed_json", 0) + 1
                continue
            outcome = norm.add_event(ev, row["source_file"], row["line_number"], row["landing_partition"],
                                     already_masked=frozenset(row["masked_fields"] or []))
            if outcome == "bronze":
                passing[(row["source_file"], row["line_number"])] = row["landing_partition"]
        batch = norm.finish()
        for reason, n in batch.quarantined_by_reason.items():
            result.still_failing[reason] = result.still_failing.get(reason, 0) + n
        if not passing:
            return result

        for attempt in range(1, delta_io._FENCE_ATTEMPTS + 1):
            # Fenced, like ingestion: a writer on another machine that committed to bronze after
            # this classification makes the commit fail, and the lines are classified again.
            at = delta_io.snapshot(paths.bronze_events)
            new_rows, _present, _dups = classify_against_bronze(paths, batch.bronze, at=at)
            if not new_rows.num_rows:
                break
            audit_view = new_rows.append_column("identity_key",
                                                pc.coalesce(new_rows["user_id"], new_rows["anonymous_id"]))
            params = _gate_parameters(plan, new_rows)
            out = auditor("bronze_events", audit_view, params)
            if not out.success:
                result.gate_failed = out.summary()
                return result
            staged = delta_io.stage(paths.bronze_events, new_rows, partition_by=["event_date"])
            try:
                delta_io.publish_fenced(at, staged, operation="replay")
                break
            except delta_io.ConcurrentCommit:  # its staged files are removed: stage again
                if attempt == delta_io._FENCE_ATTEMPTS:
                    raise
        failpoint("after_replay_bronze_commit")

        # Which passing lines are in bronze from their own line now: those are "replayed".
        in_bronze = _lines_in_bronze(paths, batch.bronze)
        by_partition: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for line, key in passing.items():
            by_partition[key].append(line)
        now = datetime.now(UTC)
        for key, lines in sorted(by_partition.items()):
            _resolve_partition(paths, key, set(lines), in_bronze, now)
            failpoint("after_replay_resolve")
            ingest_locked(paths, key, plan=plan, masker=masker, auditor=auditor)
        result.replayed = sum(1 for line in passing if line in in_bronze)
        result.duplicates = len(passing) - result.replayed
        result.partitions = sorted(by_partition)
    return result


def _gate_parameters(plan: TrackingPlan, rows: pa.Table) -> dict:
    import pandas as pd

    lo = pc.min(rows["event_ts"]).as_py()
    hi = pc.max(rows["event_ts"]).as_py()
    return {"planned_events": plan.event_names, "min_event_ts": pd.Timestamp(lo), "max_event_ts": pd.Timestamp(hi)}


def _lines_in_bronze(paths: LakePaths, rows: pa.Table) -> set[tuple[str, int]]:
    if rows.num_rows == 0:
        return set()
    found = delta_io.read(
        paths.bronze_events, rows.schema, columns=["_source_file", "_line_number"],
        partitions=[("event_date", "in", pc.unique(rows["event_date"]).to_pylist())],
        filter=pc.field("event_id").isin(rows["event_id"]),
    )
    return set(zip(found["_source_file"].to_pylist(), found["_line_number"].to_pylist(), strict=True))


def _resolve_partition(paths: LakePaths, key: str, lines: set[tuple[str, int]], in_bronze: set[tuple[str, int]],
                       now: datetime) -> None:
    """Rewrite one partition's quarantine slice with the new resolutions, in one commit."""
    day = partition_date(key)
    current = delta_io.read(
        paths.bronze_quarantine, BRONZE_QUARANTINE,
        partitions=[("landing_date", "=", day)], filter=pc.field("landing_partition") == key,
    ).to_pylist()
    for row in current:
        line = (row["source_file"], row["line_number"])
        if row["resolution"] is None and line in lines:
            row["resolution"] = "replayed" if line in in_bronze else "replayed_duplicate"
            row["resolved_at"] = now
    table = pa.Table.from_pylist(current, schema=BRONZE_QUARANTINE)
    parse_partition_key(key)
    delta_io.replace_where(
        paths.bronze_quarantine, table, f"landing_date = '{day.isoformat()}' AND landing_partition = '{key}'",
        partition_by=["landing_date"], operation="replay", metadata={"partition": key},
    )

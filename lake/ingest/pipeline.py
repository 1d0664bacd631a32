"""Landing hours -> bronze: validate, pseudonymize, drop unconsented, dedup, audit, publish.

Exactly once: under the bronze writer lock, a batch is classified against what the tables
already hold (an event_id already in bronze from the *same* landed line is "already published";
from another line it is a duplicate), audited (write-audit-publish: the gate runs on the batch
before anything becomes visible) and appended in one Delta commit per table. A rerun, an
overlapping backfill, or a restart after ``kill -9`` between any two commits therefore leaves
every landed line exactly once in bronze or quarantine. The lock serializes one machine's writers
only; across machines each commit is fenced (:func:`lake.delta_io.publish_fenced`): it fails when
another writer committed after the versions the batch was classified against, and the pass is
classified, gated and committed again — so the guarantee holds for any number of machines.

A range of hours goes through in one pass (:func:`ingest_range`): one read of its landing files,
one classification against bronze, one validation per suite, one commit per table (the ledger
too) — the cost of a pass follows the data, not the number of hours. Each hour keeps its own
ledger entry and its own verdict: a gate that fails holds only the hours whose rows fail it
(:mod:`lake.ingest.audit`); the others are classified and validated again without them, then
published. A long range is taken in consecutive passes of at most ``GROWTHLAKE_INGEST_STEP_BYTES``
of landing files, each under the lock, so memory follows the pass, not the range.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake import delta_io
from lake._failpoints import failpoint
from lake.contracts.plan import TrackingPlan
from lake.erasure.requests import record_requests
from lake.ingest.audit import Auditor, GateOutcome, HoursAudit, audit_hours, gate_record, gx_auditor, rows_of_hours
from lake.ingest.normalize import NormalizedBatch, event_time_window
from lake.ingest.parallel import normalize_files, normalize_hours, runs_in_parallel
from lake.landing import LandingFile, list_landing_files, parse_partition_key
from lake.ledger import LedgerEntry, read_entries, write_entries
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.pii import PiiMasker
from lake.schemas import BRONZE_EVENTS, BRONZE_QUARANTINE

__all__ = ["GateOutcome", "Auditor", "IngestionResult", "ingest_partition", "ingest_locked", "ingest_range",
           "ingest_range_locked", "gx_auditor", "classify_against_bronze", "bronze_gate_parameters", "range_passes",
           "BRONZE_LOCK"]

BRONZE_LOCK = "bronze"
_STAGER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="growthlake-stage")
_EVENTS_HOUR = "_landing_partition"
_QUARANTINE_HOUR = "landing_partition"


def bronze_gate_parameters(plan: TrackingPlan, key: str | list[str]) -> dict[str, Any]:
    """Runtime parameters of the ``bronze_events`` suite for one landing hour, or for several
    validated together (the event times any of them accepts: from the first's earliest to the
    last's latest; each hour's own window is enforced line by line by the contract)."""
    import pandas as pd

    keys = [key] if isinstance(key, str) else key
    windows = [event_time_window(plan, k) for k in keys]
    lo, hi = min(w[0] for w in windows), max(w[1] for w in windows)
    return {"planned_events": plan.event_names, "min_event_ts": pd.Timestamp(lo), "max_event_ts": pd.Timestamp(hi)}


@dataclass
class IngestionResult:
    """What one ingestion of a landing partition did (the ledger entry plus run figures).

    Attributes:
        partition: the landing hour.
        ledger: where its landed lines went (its row of ``bronze/ingestion_ledger``).
        bronze_appended: rows this ingestion added to ``bronze/events``.
        quarantine_appended: rows it added to ``bronze/quarantine``.
        gates: per suite, the verdict on this hour's rows ``{success, summary, metadata}``.
        held_at: where a held batch was kept (None: published).
        elapsed_s: wall time of the pass that ingested the hour (shared by the hours of a range).
        hours_in_pass: the hours ingested together with it, itself included.
        validations: the validations of the pass (shared by its hours).
        python_fallback_lines: lines the column-wise normalizer left to the per-line reference.
        conflicts: times the pass was classified and gated again because another writer (another
            machine: this one's are serialized by the lock) committed to bronze first.
    """

    partition: str
    ledger: LedgerEntry
    bronze_appended: int = 0
    quarantine_appended: int = 0
    gates: dict[str, dict] = field(default_factory=dict)  # suite -> {success, summary, metadata}
    held_at: str | None = None
    elapsed_s: float = 0.0
    hours_in_pass: int = 1
    validations: int = 0
    python_fallback_lines: int = 0  # lines the column-wise normalizer left to the per-line reference (the pass's)
    conflicts: int = 0  # times the pass was classified again because another writer committed first

    @property
    def published(self) -> bool:
        return self.held_at is None

    @property
    def failed_gates(self) -> list[str]:
        return [name for name, g in self.gates.items() if not g["success"]]


def _stored_copies(paths: LakePaths, batch: pa.Table, at: delta_io.Snapshot | None = None) -> pl.DataFrame:
    """Where bronze already holds the batch's event ids: ``event_id, _f, _l`` (file and line)."""
    # Only stored copies of the batch's ids are materialized: the scan evaluates the membership
    # test column-wise, instead of handing every id of those days to a join. Only the event_date
    # partitions the batch touches are read: a redelivered event carries its original timestamp,
    # so its copy lives in the same partition.
    existing = delta_io.read(
        paths.bronze_events, BRONZE_EVENTS, columns=["event_id", "_source_file", "_line_number"],
        partitions=[("event_date", "in", pc.unique(batch["event_date"]).to_pylist())],
        filter=pc.field("event_id").isin(pc.unique(batch["event_id"])), at=at,
    )
    have = pl.from_arrow(existing)
    assert isinstance(have, pl.DataFrame)
    return have.rename({"_source_file": "_f", "_line_number": "_l"}).unique("event_id", keep="first")


def _classify(batch: pa.Table, have: pl.DataFrame) -> tuple[pl.Series, pl.Series]:
    """Per candidate row: (new, already published from this very line). The others are duplicates.

    Per event_id: if bronze holds it, the candidate from that very line is "already published"
    and every other copy is a duplicate; if not, the first copy in (hour, file, line) order is new
    and the others are duplicates.
    """
    cand = pl.from_arrow(batch.select(["event_id", "_source_file", "_line_number"]))
    assert isinstance(cand, pl.DataFrame)
    first_copy = cand["event_id"].is_first_distinct()
    if have.height == 0:
        return first_copy, pl.Series([False] * cand.height, dtype=pl.Boolean)
    joined = cand.join(have, on="event_id", how="left", maintain_order="left")
    same_line = ((joined["_f"] == joined["_source_file"]) & (joined["_l"] == joined["_line_number"])).fill_null(False)
    return joined["_f"].is_null() & first_copy, same_line


def classify_against_bronze(paths: LakePaths, batch: pa.Table, *,
                            at: delta_io.Snapshot | None = None) -> tuple[pa.Table, int, int]:
    """Split candidate rows into (rows to publish, lines already published, duplicates).

    Per event_id: if bronze holds it, the candidate from that very line is "already published"
    and every other copy is a duplicate; if not, the first copy in (file, line) order is new and
    the others are duplicates. Only the event_date partitions the batch touches are read, at the
    version ``at`` pinned (default: the latest).
    """
    if batch.num_rows == 0:
        return batch, 0, 0
    new, present = _classify(batch, _stored_copies(paths, batch, at))
    new_count, present_count = int(new.sum()), int(present.sum())
    if new_count == batch.num_rows:
        return batch, 0, 0
    return batch.filter(new.to_arrow()), present_count, batch.num_rows - new_count - present_count


def _quarantine_seen(paths: LakePaths, keys: list[str], quarantine: pa.Table,
                     at: delta_io.Snapshot | None = None) -> pl.Series:
    """Per quarantine candidate: an earlier run of its hour already wrote it (same file and line)."""
    if quarantine.num_rows == 0:
        return pl.Series([], dtype=pl.Boolean)
    days = sorted({parse_partition_key(k).date() for k in keys})
    existing = delta_io.read(
        paths.bronze_quarantine, BRONZE_QUARANTINE, columns=["source_file", "line_number"],
        partitions=[("landing_date", "in", days)], filter=pc.field("landing_partition").isin(keys), at=at,
    )
    cand = pl.from_arrow(quarantine.select(["source_file", "line_number"]))
    have = pl.from_arrow(existing)
    assert isinstance(cand, pl.DataFrame) and isinstance(have, pl.DataFrame)
    if have.height == 0:
        return pl.Series([False] * cand.height, dtype=pl.Boolean)
    seen = cand.join(have.unique().with_columns(pl.lit(True).alias("_seen")), on=["source_file", "line_number"],
                     how="left", maintain_order="left")["_seen"]
    return seen.fill_null(False)


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


def _per_hour(hours: pl.Series, mask: pl.Series | None = None) -> dict[str, int]:
    """Rows per hour (of those where ``mask`` holds)."""
    if mask is not None:
        hours = hours.filter(mask)
    return {k: int(v) for k, v in hours.value_counts().iter_rows()} if hours.len() else {}


def _hours(table: pa.Table, column: str) -> pl.Series:
    return pl.Series(table[column].combine_chunks()) if table.num_rows else pl.Series([], dtype=pl.String)


@dataclass
class _Figures:
    """Where one hour's candidate rows went, in the classification that decided its fate."""

    present: int = 0  # bronze holds the row from this very line (an earlier run)
    new: int = 0  # to publish (or held with the hour)
    dups: int = 0
    quar_present: int = 0  # quarantine holds the line (an earlier run)
    quar_new: int = 0


@dataclass(frozen=True)
class _Snapshots:
    """The versions of bronze/events and bronze/quarantine one attempt of a pass decides on."""

    bronze: delta_io.Snapshot
    quarantine: delta_io.Snapshot


@dataclass
class _Audit:
    """Where the gates of one pass ended: what to publish, which hours to hold and why."""

    new_bronze: pa.Table
    new_quar: pa.Table
    figures: dict[str, _Figures]
    held: dict[str, dict[str, dict]]  # hour -> suite -> the gate record that failed it
    held_rows: dict[str, tuple[pa.Table, pa.Table]]  # hour -> its new bronze and quarantine rows
    verdicts: dict[str, dict[str, dict]]  # hour -> suite -> the gate record that cleared it
    staged: delta_io.StagedFiles | None
    validations: int


def _audit_pass(paths: LakePaths, keys: list[str], batch: NormalizedBatch, *, plan: TrackingPlan,
                auditor: Auditor, at: _Snapshots) -> _Audit:
    """Classify the pass against bronze (at the versions ``at`` pinned) and gate it; hold the hours
    that fail, re-gate the rest.

    One read of bronze and of quarantine; one validation per suite when everything passes.
    """
    bronze, quarantine = batch.bronze, batch.quarantine
    have = _stored_copies(paths, bronze, at.bronze) if bronze.num_rows else pl.DataFrame()
    quar_hours = _hours(quarantine, _QUARANTINE_HOUR)
    quar_seen = _quarantine_seen(paths, keys, quarantine, at.quarantine)
    quar_present, quar_new = _per_hour(quar_hours, quar_seen), _per_hour(quar_hours, ~quar_seen)
    held: dict[str, dict[str, dict]] = {}
    held_rows: dict[str, tuple[pa.Table, pa.Table]] = {}
    verdicts: dict[str, dict[str, dict]] = {}
    figures: dict[str, _Figures] = {}
    held_count: dict[str, int] = {}  # new bronze rows of a held hour when it was judged
    validations, staged = 0, None
    while True:
        # Without the held hours: a redelivery of a held hour's event is new in a later hour.
        open_hours = [k for k in keys if k not in held]
        cand = rows_of_hours(bronze, _EVENTS_HOUR, open_hours) if held else bronze
        hours = _hours(cand, _EVENTS_HOUR)
        if cand.num_rows:
            new, present = _classify(cand, have)
            new_bronze = cand.filter(new.to_arrow())
        else:
            new, present, new_bronze = pl.Series([], dtype=pl.Boolean), pl.Series([], dtype=pl.Boolean), cand
        present_per, new_per, dups_per = _per_hour(hours, present), _per_hour(hours, new), _per_hour(hours,
                                                                                                       ~new & ~present)
        keep = ~quar_seen
        if held:
            keep = keep & ~quar_hours.is_in(sorted(held))
        new_quar = quarantine.filter(keep.to_arrow()) if quarantine.num_rows else quarantine

        # Write-audit-publish: the bronze files are written (staged, invisible) while the gates
        # audit the batch; only what passes is published, in one commit per table.
        staging = None
        if not held and new_bronze.num_rows:
            staging = _STAGER.submit(delta_io.stage, paths.bronze_events, new_bronze, partition_by=["event_date"])
        audits: dict[str, HoursAudit] = {}
        try:
            if new_bronze.num_rows:
                view = new_bronze.append_column("identity_key",
                                                pc.coalesce(new_bronze["user_id"], new_bronze["anonymous_id"]))
                audits["bronze_events"] = audit_hours(auditor, "bronze_events", view, column=_EVENTS_HOUR,
                                                      parameters_for=lambda hs: bronze_gate_parameters(plan, hs))
            if new_quar.num_rows:
                audits["bronze_quarantine"] = audit_hours(auditor, "bronze_quarantine", new_quar,
                                                          column=_QUARANTINE_HOUR, parameters_for=lambda hs: {})
        finally:
            if staging is not None:
                staged = staging.result()
        validations += sum(a.validations for a in audits.values())
        for hour in open_hours:
            figures[hour] = _Figures(present_per.get(hour, 0), new_per.get(hour, 0), dups_per.get(hour, 0),
                                     quar_present.get(hour, 0), quar_new.get(hour, 0))
        hour_rows = {"bronze_events": _hours(new_bronze, _EVENTS_HOUR), "bronze_quarantine": _hours(new_quar,
                                                                                                   _QUARANTINE_HOUR)}
        for suite, audit in audits.items():
            rows_in = set(hour_rows[suite].unique().to_list())
            for hour in rows_in:
                if hour in audit.alone:
                    verdicts.setdefault(hour, {})[suite] = gate_record(audit.alone[hour])
                elif audit.outcome.success:
                    verdicts.setdefault(hour, {})[suite] = gate_record(audit.outcome)
                elif hour not in audit.failing:
                    verdicts.setdefault(hour, {})[suite] = _cleared(suite, audit, len(rows_in))
        newly = {hour for audit in audits.values() for hour in audit.failing}
        for hour in newly:
            held_count[hour] = new_per.get(hour, 0)
        for suite, audit in audits.items():
            for hour, outcome in audit.failing.items():
                held.setdefault(hour, {})[suite] = gate_record(outcome)
        if newly and staged is not None:  # it holds the rows of the hours now held: publish the rest afresh
            delta_io.discard(staged)
            staged = None
        if newly and len(held) == len(keys):
            new_bronze, new_quar = new_bronze.slice(0, 0), new_quar.slice(0, 0)
        elif newly:
            continue
        # The held hours are accounted for against what this pass leaves in bronze — as a rerun of
        # them would be: a copy of one of their events that another hour published is a duplicate.
        for hour in held:
            figures[hour] = _Figures(quar_present=quar_present.get(hour, 0), quar_new=quar_new.get(hour, 0))
        if held:
            rows = rows_of_hours(bronze, _EVENTS_HOUR, sorted(held))
            if rows.num_rows:
                published = pl.from_arrow(new_bronze.select(["event_id", "_source_file", "_line_number"]))
                assert isinstance(published, pl.DataFrame)
                after = published.rename({"_source_file": "_f", "_line_number": "_l"})
                if have.height:
                    after = pl.concat([have, after.cast(have.schema)])
                new, present = _classify(rows, after)
                hours = _hours(rows, _EVENTS_HOUR)
                for hour, n in _per_hour(hours, present).items():
                    figures[hour].present = n
                for hour, n in _per_hour(hours, new).items():
                    figures[hour].new = n
                for hour, n in _per_hour(hours, ~new & ~present).items():
                    figures[hour].dups = n
                rows = rows.filter(new.to_arrow())
            for hour in held:
                held_rows[hour] = (rows_of_hours(rows, _EVENTS_HOUR, [hour]),
                                   rows_of_hours(quarantine.filter((~quar_seen).to_arrow()) if quarantine.num_rows
                                                 else quarantine, _QUARANTINE_HOUR, [hour]))
                own = held_rows[hour][0]
                if "bronze_events" in held[hour] and own.num_rows and own.num_rows != held_count.get(hour):
                    # Its reason is the verdict on the rows it holds (as a rerun would give it).
                    view = own.append_column("identity_key", pc.coalesce(own["user_id"], own["anonymous_id"]))
                    again = auditor("bronze_events", view, bronze_gate_parameters(plan, hour))
                    validations += 1
                    if not again.success:
                        held[hour]["bronze_events"] = gate_record(again)
        return _Audit(new_bronze, new_quar, figures, held, held_rows, verdicts, staged, validations)


def _cleared(suite: str, audit: HoursAudit, hours: int) -> dict:
    """The verdict of an hour none of whose rows was unexpected in a validation that failed because
    of other hours."""
    failing = sorted(audit.failing)
    return {"success": True, "metadata": {"suite": suite, "success": True},
            "summary": f"{suite}: passed — none of this hour's rows was unexpected in the validation of {hours} "
                       f"hours, which failed on the rows of {', '.join(failing[:5])}{' …' if len(failing) > 5 else ''}"}


def _event_dates(bronze: pa.Table) -> dict[str, list]:
    """Per hour, the event dates its candidate rows carry (what the ledger records)."""
    if bronze.num_rows == 0:
        return {}
    pairs = bronze.select([_EVENTS_HOUR, "event_date"]).group_by([_EVENTS_HOUR, "event_date"]).aggregate([])
    out: dict[str, list] = {}
    for r in pairs.to_pylist():
        out.setdefault(r[_EVENTS_HOUR], []).append(r["event_date"])
    return {k: sorted(v) for k, v in out.items()}


def _reasons(quarantine: pa.Table) -> dict[str, dict[str, int]]:
    """Per hour, quarantined lines per violation (new and already stored alike)."""
    if quarantine.num_rows == 0:
        return {}
    counts = quarantine.group_by([_QUARANTINE_HOUR, "violation_type"]).aggregate([([], "count_all")])
    out: dict[str, dict[str, int]] = {}
    for r in counts.to_pylist():
        out.setdefault(r[_QUARANTINE_HOUR], {})[r["violation_type"]] = r["count_all"]
    return out


def _ingest_pass(paths: LakePaths, keys: list[str], files: dict[str, list[LandingFile]], *, plan: TrackingPlan,
                 masker: PiiMasker, auditor: Auditor) -> list[IngestionResult]:
    """Ingest consecutive hours in one pass (the caller holds this machine's bronze writer lock).

    The lock only serializes this machine's writers. Across machines, the commits are fenced
    (:func:`lake.delta_io.publish_fenced`): when another writer committed to bronze or quarantine
    after the versions this pass classified against, the commit fails, and the pass classifies,
    gates and commits again against the new versions — where the other writer's rows are already
    published (same line) or make this pass's copies duplicates (another line), as a rerun would.
    """
    started = time.perf_counter()
    all_files = [f for fs in files.values() for f in fs]
    if auditor is gx_auditor and runs_in_parallel(all_files):
        # Workers do the parsing; this process would only wait, so it imports GX meanwhile.
        _STAGER.submit(_warm_up_gates)
    batch = normalize_hours(paths, files, plan=plan, masker=masker)
    span = {"partition": keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}", "partitions": len(keys)}
    conflicts, validations = 0, 0
    while True:
        at = _Snapshots(delta_io.snapshot(paths.bronze_events), delta_io.snapshot(paths.bronze_quarantine))
        audit = _audit_pass(paths, keys, batch, plan=plan, auditor=auditor, at=at)
        validations += audit.validations
        try:
            _commit_pass(paths, audit, at, span)
            break
        except delta_io.ConcurrentCommit:
            conflicts += 1
            if conflicts >= delta_io._FENCE_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.02, 0.2) * conflicts)
    dates, reasons = _event_dates(batch.bronze), _reasons(batch.quarantine)

    results: dict[str, IngestionResult] = {}
    stored = read_entries(paths, keys)
    for key in keys:
        (lines, consent), fig = batch.by_partition.get(key, (0, 0)), audit.figures.get(key, _Figures())
        entry = LedgerEntry(
            landing_partition=key, lines_landed=lines, bronze_rows=fig.present + fig.new,
            quarantined=fig.quar_present + fig.quar_new, consent_dropped=consent,
            duplicates_dropped=fig.dups, quarantined_by_reason=reasons.get(key, {}), event_dates=dates.get(key, []),
            files=[f.relative for f in files[key]], plan_version=plan.version,
        )
        result = results[key] = IngestionResult(partition=key, ledger=entry, hours_in_pass=len(keys),
                                                     python_fallback_lines=batch.python_fallback_lines,
                                                     conflicts=conflicts)
        result.gates = {**audit.verdicts.get(key, {}), **audit.held.get(key, {})}
        if key in audit.held:
            # Nothing of a rejected hour becomes visible; its new rows are kept aside for inspection.
            own_bronze, own_quar = audit.held_rows[key]
            result.held_at = _hold(paths, key, own_bronze, own_quar)
            entry.bronze_rows, entry.quarantined = fig.present, fig.quar_present
            entry.held_for_audit = fig.new + fig.quar_new
            entry.gate_status = "failed"
            entry.gate_summary = " | ".join(g["summary"] for g in audit.held[key].values())
        else:
            before = stored.get(key)
            if result.gates:
                entry.gate_summary = "; ".join(f"{name}: passed" for name in result.gates)
            elif before is not None and before.gate_status == "passed" and before.gate_summary:
                entry.gate_summary = before.gate_summary  # a rerun: the verdict its rows were published under
            else:
                entry.gate_summary = "nothing new to publish"
            result.bronze_appended, result.quarantine_appended = fig.new, fig.quar_new
    # A withdrawal of analytics consent is a right-to-erasure request: kept (raw ids) until processed.
    record_requests(paths, batch.revocations)
    write_entries(paths, [results[k].ledger for k in keys])
    elapsed = time.perf_counter() - started
    for r in results.values():
        r.elapsed_s, r.validations = elapsed, validations
    return [results[k] for k in keys]


def _commit_pass(paths: LakePaths, audit: _Audit, at: _Snapshots, span: dict[str, Any]) -> None:
    """Publish a pass: bronze, then quarantine, each in one fenced commit against the versions ``at``.

    Raises:
        ConcurrentCommit: another writer committed to the table first (``publish_fenced`` removed this
            pass's files of it; a bronze commit already made stays, and the next attempt sees it).
    """
    staged = audit.staged
    if staged is None and audit.new_bronze.num_rows:
        staged = delta_io.stage(paths.bronze_events, audit.new_bronze, partition_by=["event_date"])
    if staged is not None:
        delta_io.publish_fenced(at.bronze, staged, operation="ingest", metadata=span)
    failpoint("after_bronze_commit")
    if audit.new_quar.num_rows:
        quarantine = delta_io.stage(paths.bronze_quarantine, audit.new_quar, partition_by=["landing_date"])
        delta_io.publish_fenced(at.quarantine, quarantine, operation="ingest", metadata=span)
    failpoint("after_quarantine_commit")


def range_passes(paths: LakePaths, keys: list[str], *, max_bytes: int | None = None
                 ) -> list[tuple[list[str], dict[str, list[LandingFile]]]]:
    """Split consecutive hours into passes of at most ``max_bytes`` of landing files
    (``GROWTHLAKE_INGEST_STEP_BYTES``); an hour larger than that is a pass of its own."""
    limit = max_bytes or paths.settings.ingest_step_bytes
    passes: list[tuple[list[str], dict[str, list[LandingFile]]]] = []
    size = 0
    for key in keys:
        files = list_landing_files(paths, key)
        hour_bytes = sum(f.size for f in files)
        if not passes or (size and size + hour_bytes > limit):
            passes.append(([], {}))
            size = 0
        passes[-1][0].append(key)
        passes[-1][1][key] = files
        size += hour_bytes
    return passes


def ingest_range_locked(paths: LakePaths, keys: list[str], *, plan: TrackingPlan, masker: PiiMasker,
                        auditor: Auditor = gx_auditor) -> list[IngestionResult]:
    """:func:`ingest_range` in one pass, for a caller that already holds the bronze writer lock."""
    files = {key: list_landing_files(paths, key) for key in keys}
    return _ingest_pass(paths, keys, files, plan=plan, masker=masker, auditor=auditor)


def ingest_range(paths: LakePaths, keys: list[str], *, plan: TrackingPlan, masker: PiiMasker,
                 auditor: Auditor = gx_auditor) -> list[IngestionResult]:
    """Ingest landing hours into ``bronze/events`` and ``bronze/quarantine``, exactly once, a range in one pass.

    The hours are read, classified against bronze, gated and committed together — one commit per
    table for the pass — in passes of at most ``GROWTHLAKE_INGEST_STEP_BYTES`` of landing files, each
    under the bronze writer lock. Every hour keeps its own ledger entry, reconciled on its own.

    Args:
        paths: the lake's locations.
        keys: hourly partition keys, e.g. ``["2026-11-02-05:00", "2026-11-02-06:00"]``, oldest first
            (the first landed copy of a redelivered event is the one kept).
        plan: the tracking plan to enforce.
        masker: the keyed pseudonymizer for IPs and PII.
        auditor: the gate run before publishing (default: the Great Expectations suites).

    Returns:
        One result per hour, in ``keys`` order. An hour whose rows fail a gate is held — nothing of
        it is published, its new rows are kept at ``result.held_at``, its ledger entry is marked
        unreconciled — and the other hours are published; the caller decides how to fail (the
        Dagster asset fails its blocking check for that hour).

    Raises:
        LandingPartitionError: a key is not an hourly key (nothing is written).
    """
    keys = sorted(set(keys))
    for key in keys:
        parse_partition_key(key)
    results: list[IngestionResult] = []
    for pass_keys, files in range_passes(paths, keys):
        with table_lock(paths, BRONZE_LOCK):
            results += _ingest_pass(paths, pass_keys, files, plan=plan, masker=masker, auditor=auditor)
    return results


def ingest_locked(paths: LakePaths, key: str, *, plan: TrackingPlan, masker: PiiMasker,
                  auditor: Auditor = gx_auditor) -> IngestionResult:
    """:func:`ingest_partition` for a caller that already holds the bronze writer lock."""
    return ingest_range_locked(paths, [key], plan=plan, masker=masker, auditor=auditor)[0]


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

"""``erase_person``: the right to erasure (GDPR art. 17) across everything below the storage root."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lake import delta_io
from lake.erasure.delta_tables import TableErasure, discover_tables, erase_table
from lake.erasure.errors import ErasureError, ErasureIncomplete
from lake.erasure.landing import erase_landing
from lake.erasure.record import subject_hash, write_record
from lake.erasure.stores import (
    erase_online_store,
    erase_warehouse,
    leftover_files,
    scrub_loose_files,
    scrub_loose_objects,
)
from lake.erasure.subject import Subject, resolve_subject, validate_subject_id
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.pii import PiiMasker, pii_key_from_env

if TYPE_CHECKING:
    from lake.contracts.plan import TrackingPlan

__all__ = ["ERASURE_LOCKS", "ErasureReport", "erase_person"]

# Writer locks held for the whole erasure, always in this order (each writer elsewhere takes one of
# them, or a later one nested in an earlier one: loops -> approvals/outbox/audit), so no deadlock.
# The warehouse lock is taken last, by lake.warehouse.staged_warehouse itself.
ERASURE_LOCKS = (
    "bronze",
    "silver",
    "features",
    "loops",
    "decisions_approvals",
    "decisions_message_outbox",
    "decisions_audit_log",
    "governance",
)


@dataclass
class ErasureReport:
    """What one erasure removed — counts and file names only, never the person's ids.

    Attributes:
        erasure_id: The id of the erasure record in ``delta/governance/erasures``.
        subject_hash: Keyed hash of the id given (see ``lake.erasure.record``).
        tables: Delta rows deleted per table (``silver/events``…), tables without any left out.
        redacted: Delta rows kept with the ids replaced by ``"erased"`` (the audit log), per table.
        history_purged: Tables whose old versions and log were purged.
        landing_lines_removed: Landed lines blanked.
        landing_files: Landing files rewritten (relative to ``landing/events``).
        ledger_partitions: Landing hours whose ledger entry was re-derived (each reconciles).
        files: Other files rewritten (relative to the root) with rows / mentions removed.
        warehouse: Rows deleted per warehouse table (``marts.dim_users``…).
        online_rows: Rows deleted from the online feature store.
        devices: How many devices (anonymous ids) were linked to the person (a count, not the ids).
        shared_devices: How many of those another user id was seen with too: only the person's own
            events on them were erased (``lake.erasure.subject``).
        subject_known: Whether the lake had seen the id at all (an unknown id erases nothing).
    """

    erasure_id: str
    subject_hash: str
    reason: str
    requested_at: datetime
    completed_at: datetime | None = None
    tables: dict[str, int] = field(default_factory=dict)
    redacted: dict[str, int] = field(default_factory=dict)
    history_purged: list[str] = field(default_factory=list)
    landing_lines_removed: int = 0
    landing_files: list[str] = field(default_factory=list)
    ledger_partitions: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)
    warehouse: dict[str, int] = field(default_factory=dict)
    online_rows: int = 0
    devices: int = 0
    shared_devices: int = 0
    subject_known: bool = True
    elapsed_s: float = 0.0

    @property
    def rows_removed(self) -> int:
        return sum(self.tables.values())

    @property
    def rows_redacted(self) -> int:
        return sum(self.redacted.values())

    @property
    def nothing_found(self) -> bool:
        return not (
            self.tables
            or self.redacted
            or self.landing_lines_removed
            or self.files
            or self.warehouse
            or self.online_rows
            or self.history_purged
        )

    def removed_by_place(self) -> dict[str, int]:
        """One figure per place: ``delta/<table>``, ``landing``, ``warehouse/<table>``, ``online``, files."""
        out = {f"delta/{t}": n for t, n in sorted(self.tables.items())}
        out |= {f"delta/{t} (redacted)": n for t, n in sorted(self.redacted.items())}
        if self.landing_lines_removed:
            out["landing (lines)"] = self.landing_lines_removed
        out |= {f"warehouse/{t}": n for t, n in sorted(self.warehouse.items())}
        if self.online_rows:
            out["online store"] = self.online_rows
        out |= dict(sorted(self.files.items()))
        return out

    def detail(self) -> dict[str, Any]:
        return {
            "tables": self.tables,
            "redacted": self.redacted,
            "history_purged": self.history_purged,
            "landing_files": self.landing_files,
            "ledger_partitions": self.ledger_partitions,
            "files": self.files,
            "warehouse": self.warehouse,
            "online_rows": self.online_rows,
            "devices": self.devices,
            "shared_devices": self.shared_devices,
            "subject_known": self.subject_known,
        }


def _safe_reason(reason: str, subject: Subject) -> str:
    # The operator's own text: every occurrence of an id goes, even inside a longer word.
    text = (reason or "").strip() or "unspecified"
    ids = {subject.given} | subject.exact | subject.shared_devices | subject.pii
    for n in sorted(ids, key=lambda s: (-len(s), s)):
        text = text.replace(n, "[subject]")
    return text[:500]


def erase_person(
    paths: LakePaths,
    user_id: str,
    *,
    reason: str,
    requested_at: datetime | None = None,
    masker: PiiMasker | None = None,
    plan: TrackingPlan | None = None,
) -> ErasureReport:
    """Remove every trace of one person from the lake (GDPR art. 17), and record that it was done.

    The person is ``user_id`` and the devices attributed to it, resolved through the identity graph
    (``lake.erasure.subject``); rows and landed lines are matched on their parsed id fields, never
    on substrings, and the most specific id decides: an event carrying another user's id is never
    erased, an anonymous event on a device shared with another user goes with the user silver
    attributes the device to (the earliest link). Their email and phone (plan-marked PII, raw and
    as keyed hashes) are removed wherever else they appear. In order, under the writer locks of
    every table it touches (:data:`ERASURE_LOCKS`):

    1. the landing zone: their lines are blanked in place (line numbers of the others stay);
    2. every Delta table under ``delta/``: their rows are deleted — in the audit log, which is
       append-only by rule, they are redacted in place instead (the legal exception: decisions
       stay accountable, ``person_id`` becomes ``"erased"``) — and the history of each table that
       held them is purged (vacuum at zero retention, checkpoint, log cleanup);
    3. the silver build state is moved to the new table versions (so the next build neither rolls
       back nor reprocesses), and each rewritten landing hour's ledger entry is re-derived by
       ingesting the hour again (idempotent: nothing is written but the ledger) and verified;
    4. Parquet and JSON files elsewhere (held batches, simulator truth, flags documents), the online
       feature store (delete + VACUUM), the warehouse (delete in a copy, re-create, swap);
    5. a record in ``delta/governance/erasures`` with counts and a keyed hash — no raw id.

    Erasing the same person again finds nothing and changes nothing but the record (zero counts);
    an id the lake never saw is not an error: it matches exact identity values only, so it erases
    nothing, and the report says so (``nothing_found``, ``subject_known`` False).

    Args:
        paths: the lake (a local storage root).
        user_id: the person's user id (an anonymous id works too: the device and the user it is
            linked to are erased).
        reason: why (kept in the record, with the person's ids masked out).
        requested_at: when the person asked (default: now).
        masker: the keyed hasher (default: from ``GROWTHLAKE_PII_KEY``).
        plan: the tracking plan used to re-derive ledger entries (default: the shipped one).

    Returns:
        What was removed, per table and store.

    Raises:
        InvalidSubject: ``user_id`` is empty or malformed.
        UnknownPersonColumn: a table has a column that looks like a person key the erasure does not
            know (raised before anything is changed).
        ErasureIncomplete: a file the erasure does not know how to rewrite still holds an id.
        LockTimeout: a writer held one of the locks for too long.
    """
    started = time.perf_counter()
    user_id = validate_subject_id(user_id)
    masker = masker or PiiMasker(pii_key_from_env(paths))
    if plan is None:
        from lake.contracts import load_plan

        plan = load_plan()
    now = datetime.now(UTC)
    report = ErasureReport(
        erasure_id=uuid.uuid4().hex,
        subject_hash=subject_hash(masker, user_id),
        reason="",
        requested_at=requested_at or now,
    )
    with ExitStack() as locks:
        for name in ERASURE_LOCKS:
            locks.enter_context(table_lock(paths, name))
        subject = resolve_subject(paths, user_id, masker, plan=plan)
        report.reason = _safe_reason(reason, subject)
        report.devices = len(subject.anonymous_ids | subject.shared_devices)
        report.shared_devices = len(subject.shared_devices)
        report.subject_known = subject.known

        tables = discover_tables(paths)
        _preflight(paths, tables)
        bronze_before = delta_io.version(paths.bronze_events)
        silver_state = _silver_state_before(paths)

        landing, subject = erase_landing(paths, subject, plan=plan)
        report.landing_lines_removed, report.landing_files = landing.lines_removed, landing.files_rewritten

        successors = _successor_rows(subject)
        for table in tables:
            res: TableErasure = erase_table(
                paths,
                table,
                subject,
                erasure_id=report.erasure_id,
                replacements=successors if table == _IDENTITY_MAP else None,
            )
            if res.rows_removed:
                report.tables[table] = res.rows_removed
            if res.rows_redacted:
                report.redacted[table] = res.rows_redacted
            if res.history_purged:
                report.history_purged.append(table)

        if silver_state is not None and report.history_purged:  # the erasure's commits are not a foreign write
            from lake.silver.state import record_own_commits

            record_own_commits(paths, silver_state, bronze_before=bronze_before)
        report.ledger_partitions, ledger_problems = _rederive_ledger(
            paths, landing.partitions, plan=plan, masker=masker
        )

        if paths.is_local:
            report.files = scrub_loose_files(paths, subject)
        report.online_rows = erase_online_store(paths, subject)
        report.warehouse = erase_warehouse(paths, subject)

        if paths.is_local:
            leftovers = leftover_files(paths, subject, plan=plan)
        else:  # the bucket's loose objects and the local folder's files, then what is left anywhere
            report.files, leftovers = scrub_loose_objects(paths, subject, plan=plan)
        report.completed_at = datetime.now(UTC)
        report.elapsed_s = time.perf_counter() - started
        write_record(
            paths,
            {
                "erasure_id": report.erasure_id,
                "subject_hash": report.subject_hash,
                "reason": report.reason,
                "requested_at": report.requested_at,
                "completed_at": report.completed_at,
                "rows_removed": report.rows_removed,
                "rows_redacted": report.rows_redacted,
                "landing_lines_removed": report.landing_lines_removed,
                "files_rewritten": len(report.landing_files)
                + len(report.files)
                + (1 if report.warehouse else 0)
                + (1 if report.online_rows else 0),
                "detail": report.detail()
                | ({"leftover_files": leftovers} if leftovers else {})
                | ({"ledger_problems": ledger_problems} if ledger_problems else {}),
            },
        )
    if ledger_problems:
        raise ErasureError(
            f"erasure {report.erasure_id} removed the person everywhere, but the ledger of these "
            "landing hours does not reconcile afterwards: "
            + "; ".join(ledger_problems)
            + ". Re-materialize those hours (ingestion is idempotent)."
        )
    if leftovers:
        raise ErasureIncomplete(report.erasure_id, leftovers)
    return report


_IDENTITY_MAP = "silver/identity_map"


def _successor_rows(subject: Subject):
    """The identity rows that replace the subject's for devices another user linked too (or None)."""
    if not subject.successors:
        return None
    import pyarrow as pa

    from lake.schemas import SILVER_IDENTITY_MAP

    return pa.Table.from_pylist(list(subject.successors), schema=SILVER_IDENTITY_MAP)


def _preflight(paths: LakePaths, tables: list[str]) -> None:
    """Check every table's columns before anything is changed (an unknown person key stops all)."""
    import pyarrow as pa
    from deltalake import DeltaTable

    from lake.erasure.delta_tables import check_columns

    for table in tables:
        uri = f"{paths.root}/delta/{table}"
        check_columns(table, pa.schema(DeltaTable(uri).schema().to_arrow()))


def _silver_state_before(paths: LakePaths):
    """The silver build state, after rolling back a build that crashed (its own recovery rule), or
    None before the first build."""
    from lake.silver.state import read_state, roll_back_unfinished
    from lake.silver.tables import Tables

    tables = Tables()
    state = read_state(paths, tables)
    if state is not None:
        roll_back_unfinished(paths, tables, state)
    return state


def _rederive_ledger(
    paths: LakePaths, keys: list[str], *, plan: TrackingPlan, masker: PiiMasker
) -> tuple[list[str], list[str]]:
    """Re-ingest each rewritten landing hour and verify it reconciles.

    Every remaining line is already in bronze or quarantine, so ingesting the hour again writes
    nothing but its ledger entry, which now counts the blanked lines as not landed (the way
    ``lake.replay`` re-derives entries). An hour whose batch a gate had held is re-audited like a
    re-materialization would (its other rows may be published now); if it is held again, it stays
    unreconciled as before, which is not the erasure's problem.

    Returns:
        (hours re-derived, problems of hours that reconciled before but not after).
    """
    from lake.ingest.pipeline import ingest_locked  # the ingestion pipeline imports lake.erasure.requests
    from lake.ledger import read_entry, verify_partition

    done, problems = [], []
    for key in sorted(keys):
        before = read_entry(paths, key)
        if before is None:
            continue  # never ingested: its first ingestion counts the rewritten files
        ingest_locked(paths, key, plan=plan, masker=masker)
        done.append(key)
        check = verify_partition(paths, key)
        if not check.ok and before.reconciled:
            problems.append(f"{key}: {check.detail}")
    return done, problems

"""Build the silver layer from bronze: incrementally (``build_silver``) or from scratch
(``rebuild_silver``), exactly once.

An incremental build, under the ``silver`` writer lock (this machine's builds) and the silver build
claim (every machine's: a conflict-checked Delta commit, ``lake.silver.claim``):

1. reads the build state (the bronze version silver reflects) and rolls back any commit of a
   build that crashed before recording its state (see ``lake.silver.state``);
2. reads only the bronze rows added since that version (``lake.silver.changes``) — a long
   backlog in bounded steps of consecutive bronze commits, steps 2–4 once per step;
3. stages what identity_map, events and sessions would receive (frames in memory), audits the
   staged frames with the silver GX suites (``lake.silver.audit``), and only then commits
   identity_map (append, or rewrite when a link changes), then events (new rows appended;
   event_date partitions holding re-attributed rows overwritten whole), then the affected
   session_date partitions of sessions — write-audit-publish through ``lake.wap``;
4. records the new state — the commit point.

A step whose audit fails commits nothing. When the events suite names the landing hours whose own
rows fail (as bronze does, ``lake.ingest.audit``), the step is staged and audited again without
them and the other hours are published; the held hours' rows are not. Either way the build stops
there and the state keeps the bronze version of the last fully published step (recording the
tables' new versions, so nothing is rolled back): the next build reprocesses the step — the rows
already published change nothing — and publishes the held hours once they pass. (Without a
previous state the whole step is held: a state cannot record "bronze before its first commit".)

A rerun with nothing new commits nothing; a rerun after ``kill -9`` between any two commits
rolls back and redoes the same build. ``rebuild_silver`` derives all three tables from the whole
of bronze with the same pure functions, so the two must agree — the tests check that they do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from lake._failpoints import failpoint
from lake.errors import SilverStateError
from lake.ledger import read_ledger
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.schemas import SILVER_EVENTS, SILVER_IDENTITY_MAP, SILVER_SESSIONS
from lake.silver.audit import SILVER_CHECKS, SilverGate, StagedStep, audit_step, held_hours
from lake.silver.changes import BronzeChanges, bronze_changes, change_steps, step_rows
from lake.silver.claim import silver_claim
from lake.silver.sessions import sessionize
from lake.silver.state import (
    BuildState,
    read_state,
    recorded_versions,
    roll_back_unfinished,
    table_versions,
    write_state,
)
from lake.silver.steps import (
    EVENT_LAYOUT,
    commit_events,
    commit_identity,
    commit_sessions,
    stage_events,
    stage_identity,
    stage_sessions,
)
from lake.silver.tables import Tables, to_arrow
from lake.silver.transform import link_candidates, silver_events
from lake.wap import CheckOutcome, publish_if_audited

__all__ = ["SILVER_LOCK", "SilverResult", "build_silver", "rebuild_silver"]

SILVER_LOCK = "silver"
"""Name of the writer lock held around every build of the silver tables."""


@dataclass
class SilverResult:
    """What one silver build did.

    Attributes:
        events_written: silver/events rows added or re-attributed to another person.
        identities_added: devices linked to a user for the first time.
        identities_changed: linked devices whose identity row changed (earlier link evidence, or
            a different user).
        persons_restitched: distinct persons (``anon:<id>`` or a user) whose events moved to
            another person (in a rebuild: the devices whose anonymous events belong to a user).
        sessions_written: silver/sessions rows inserted or recomputed.
        bronze_version: bronze/events version silver now reflects (None: no bronze yet).
        elapsed_s: wall time of the build.
        bronze_rows_read: bronze rows (re)processed.
        sessions_removed: sessions that no longer exist (merged into others, or re-attributed).
        rolled_back: silver tables rolled back first (a previous build had crashed).
        mode: ``incremental`` or ``rebuild``.
        landing_partitions: landing hours of the bronze rows (re)processed — the rows this build
            added carry one of them in ``_landing_partition`` (what the silver gates validate).
        event_dates: event dates of those rows.
        gates: the verdict of each silver check over the build (the first failure, else the last pass).
        held_hours: landing hours whose rows failed the audit and were not published (hour -> why);
            the build stopped at the step holding them.
        published_hours: landing hours whose rows were published (audited and committed).
    """

    events_written: int = 0
    identities_added: int = 0
    identities_changed: int = 0
    persons_restitched: int = 0
    sessions_written: int = 0
    bronze_version: int | None = None
    elapsed_s: float = 0.0
    bronze_rows_read: int = 0
    sessions_removed: int = 0
    rolled_back: list[str] = field(default_factory=list)
    mode: str = "incremental"
    landing_partitions: list[str] = field(default_factory=list)
    event_dates: list = field(default_factory=list)
    gates: dict[str, CheckOutcome] = field(default_factory=dict)
    held_hours: dict[str, str] = field(default_factory=dict)
    published_hours: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int | float | str | None]:
        """Plain figures (CLI output, Dagster metadata)."""
        lists = ("rolled_back", "landing_partitions", "event_dates", "gates", "held_hours", "published_hours")
        return ({k: v for k, v in self.__dict__.items() if k not in lists}
                | {"rolled_back": len(self.rolled_back), "landing_partitions": len(self.landing_partitions),
                   "held_hours": len(self.held_hours)})

    def _record(self, checks: list[CheckOutcome]) -> None:
        for check in checks:
            if check.name not in self.gates or self.gates[check.name].passed:
                self.gates[check.name] = check


def build_silver(paths: LakePaths, *, since_version: int | None = None,
                 landing_partitions: list[str] | None = None, gate: SilverGate | None = None) -> SilverResult:
    """Bring silver/identity_map, silver/events and silver/sessions up to date with bronze.

    Args:
        paths: the lake's locations.
        since_version: also reprocess the bronze rows added after this bronze/events version
            (e.g. ``0`` after a bug fix). It only widens the change set: rows new since the last
            build are always processed. Reprocessing rows silver already reflects changes nothing.
        landing_partitions: landing hours (``YYYY-MM-DD-HH:00``) whose bronze rows are processed
            too, whatever the state says (a backfill of those hours): those the change set did
            not already hold, after it, in steps of whole hours of at most
            ``GROWTHLAKE_SILVER_STEP_ROWS`` rows (as the ledger counts them); a no-op when
            nothing changed.
        gate: how each staged step is audited before it is committed (default: the silver GX
            suites, with the event names of the tracking plan ``load_plan()`` reads).

    Returns:
        What the build wrote. ``bronze_version`` is the bronze version silver now reflects;
        ``held_hours`` the landing hours whose rows failed the audit (nothing of theirs published).

    Raises:
        SilverStateError: a crashed build cannot be rolled back (run :func:`rebuild_silver`).
        LockTimeout: another build holds the silver writer lock.
    """
    if since_version is not None and since_version < 0:
        raise ValueError(f"since_version must be a bronze/events version (>= 0), got {since_version}")
    started = time.perf_counter()
    if gate is None:
        from lake.contracts import load_plan

        gate = SilverGate(planned_events=tuple(load_plan().event_names))
    with table_lock(paths, SILVER_LOCK), silver_claim(paths) as claim:
        tables = Tables()
        state = read_state(paths, tables)
        result = SilverResult(rolled_back=roll_back_unfinished(paths, tables, state))
        since = state.bronze_version if state is not None else None
        if since is not None and since_version is not None:
            since = min(since, since_version)  # may widen the change set, never skip unprocessed rows
        # A long backlog is processed in bounded steps of consecutive bronze commits, each recorded
        # as it ends, as the hourly job would have processed them (lake.silver.changes).
        steps = change_steps(paths, since_version=since)
        covered: dict[str, int] = {}  # bronze rows per landing hour in the change set
        for step, until in enumerate(steps):
            changes = bronze_changes(paths, since_version=since, until_version=until)
            if changes.version is None:
                result.bronze_version = None
                break
            # (an earlier step of a widened change set, since_version=, may end before the recorded version)
            if step == len(steps) - 1 and state is not None and changes.version < state.bronze_version:
                raise SilverStateError(paths.bronze_events, f"bronze is at version {changes.version} but silver "
                                       f"already reflects version {state.bronze_version}: bronze was recreated")
            for hour, n in _rows_per_hour(changes.rows).items():
                covered[hour] = covered.get(hour, 0) + n
            claim.renew()
            state = _step(paths, tables, changes, state, result, gate)
            since = changes.version
            del changes
            if result.held_hours:
                break  # the state stays before this step: later steps wait for it
        # The hours asked for whose rows the change set did not hold (a rerun, a backfill of hours
        # silver already reflects) are reprocessed too, in bounded steps of whole hours.
        if landing_partitions and result.bronze_version is not None and not result.held_hours:
            for hours in _reprocessing_steps(paths, landing_partitions, covered):
                changes = bronze_changes(paths, since_version=since, landing_partitions=hours)
                claim.renew()
                state = _step(paths, tables, changes, state, result, gate)
                since = changes.version
                del changes
                if result.held_hours:
                    break
    result.elapsed_s = time.perf_counter() - started
    return result


def _rows_per_hour(rows: pa.Table) -> dict[str, int]:
    if rows.num_rows == 0:
        return {}
    counts = rows.group_by("_landing_partition").aggregate([([], "count_all")]).to_pylist()
    return {r["_landing_partition"]: r["count_all"] for r in counts}


def _reprocessing_steps(paths: LakePaths, hours: list[str], covered: dict[str, int]) -> list[list[str]]:
    """The ``hours`` whose bronze rows (as the ledger counts them) were not all in the change set,
    in consecutive groups of at most ``GROWTHLAKE_SILVER_STEP_ROWS`` rows (an hour never split)."""
    ledger = {r["landing_partition"]: r["bronze_rows"] for r in read_ledger(paths, sorted(set(hours))).to_pylist()}
    todo = [h for h in sorted(set(hours)) if covered.get(h, 0) < ledger.get(h, 0)]
    limit = step_rows()
    groups: list[list[str]] = []
    total = 0
    for hour in todo:
        if not groups or (total and total + ledger[hour] > limit):
            groups.append([])
            total = 0
        groups[-1].append(hour)
        total += ledger[hour]
    return groups


def _step(paths: LakePaths, tables: Tables, changes: BronzeChanges, state: BuildState | None,
          result: SilverResult, gate: SilverGate) -> BuildState | None:
    """Apply one step's bronze rows and record the state it reached (the step's commit point).

    When the audit held rows of the step, the state keeps the previous bronze version (and records the
    tables' versions after what was published), so the next build reprocesses the step."""
    assert changes.version is not None
    result.bronze_version = changes.version
    result.bronze_rows_read += changes.rows.num_rows
    held: dict[str, str] = {}
    if changes.rows.num_rows:
        rows: pl.DataFrame = pl.from_arrow(changes.rows)  # type: ignore[assignment]
        result.landing_partitions = sorted({*result.landing_partitions,
                                            *rows["_landing_partition"].unique().to_list()})
        result.event_dates = sorted({*result.event_dates, *rows["event_date"].unique().to_list()})
        held = _apply(paths, tables, rows, changes.version, result, gate, partial=state is not None)
        del rows
    if held:
        result.held_hours.update(held)
        result.bronze_version = state.bronze_version if state is not None else None
        if state is not None and table_versions(paths, tables) != recorded_versions(state):
            state = write_state(paths, tables, bronze_version=state.bronze_version, mode="incremental")
        return state
    moved = state is None or state.bronze_version != changes.version
    if moved or table_versions(paths, tables) != recorded_versions(state):  # type: ignore[arg-type]
        state = write_state(paths, tables, bronze_version=changes.version, mode="incremental")
    return state


def _apply(paths: LakePaths, tables: Tables, bronze: pl.DataFrame, bronze_version: int, result: SilverResult,
           gate: SilverGate, *, partial: bool) -> dict[str, str]:
    """Stage, audit and commit one step (``lake.wap``). Returns the landing hours held (hour -> why).

    When the events suite names failing hours (and ``partial``), the step is staged and audited again
    without their rows and the rest is published; any other failure holds every hour of the step."""
    meta = {"bronze_version": bronze_version}
    held: dict[str, str] = {}
    while True:
        verdict = publish_if_audited(
            stage=lambda rows=bronze: _stage(paths, tables, rows),  # type: ignore[misc]
            audit=lambda staged: audit_step(gate, staged),
            publish=lambda staged: _commit(paths, tables, staged, meta, result))
        result._record(verdict.checks)
        hours = set(bronze["_landing_partition"].unique().to_list())
        if verdict.published:
            result.published_hours = sorted({*result.published_hours, *hours})
            return held
        failing = held_hours(verdict.checks)
        others_failed = any(not c.passed for c in verdict.checks if c.name != SILVER_CHECKS["events"])
        if partial and failing and not others_failed and set(failing) < hours:
            held.update(failing)
            bronze = bronze.filter(~pl.col("_landing_partition").is_in(sorted(failing)))
            continue
        reason = verdict.summary()
        return held | {hour: failing.get(hour, reason) for hour in sorted(hours)}


def _stage(paths: LakePaths, tables: Tables, bronze: pl.DataFrame) -> StagedStep:
    identity = stage_identity(paths, tables, bronze)
    events = stage_events(paths, tables, bronze, identity)
    return StagedStep(identity, events, stage_sessions(paths, tables, events))


def _commit(paths: LakePaths, tables: Tables, staged: StagedStep, meta: dict, result: SilverResult) -> None:
    commit_identity(paths, tables, staged.identity, metadata=meta)
    failpoint("silver_after_identity_commit")
    events = commit_events(paths, tables, staged.events, metadata=meta)
    failpoint("silver_after_events_commit")
    sessions = commit_sessions(paths, tables, staged.sessions, metadata=meta)
    failpoint("silver_after_sessions_commit")
    identity = staged.identity
    result.identities_added += identity.added
    result.identities_changed += identity.changed
    result.events_written += events.new_rows + events.reattributed_rows
    result.persons_restitched += events.persons_restitched
    result.sessions_written += sessions.written
    result.sessions_removed += sessions.removed


def rebuild_silver(paths: LakePaths) -> SilverResult:
    """Recompute silver/identity_map, silver/events and silver/sessions from all of bronze.

    Each table is replaced in one commit; the build state is recorded last, so a crash midway is
    rolled back by the next :func:`build_silver` (which then continues incrementally).

    Returns:
        What was written (every row counts as written).
    """
    started = time.perf_counter()
    with table_lock(paths, SILVER_LOCK), silver_claim(paths):
        changes = bronze_changes(paths, since_version=None)
        result = SilverResult(bronze_version=changes.version, bronze_rows_read=changes.rows.num_rows, mode="rebuild")
        if changes.version is None:
            result.elapsed_s = time.perf_counter() - started
            return result
        bronze: pl.DataFrame = pl.from_arrow(changes.rows)  # type: ignore[assignment]
        identity = link_candidates(bronze)
        events = silver_events(bronze, identity)
        sessions = sessionize(events)
        meta = {"bronze_version": changes.version}
        tables = Tables()
        tables.overwrite(paths.silver_identity_map, to_arrow(identity.sort("anonymous_id"), SILVER_IDENTITY_MAP),
                         partition_by=None, operation="silver_rebuild", metadata=meta)
        tables.overwrite(paths.silver_events, to_arrow(events.sort(EVENT_LAYOUT), SILVER_EVENTS),
                         partition_by=["event_date"], operation="silver_rebuild", metadata=meta)
        tables.overwrite(paths.silver_sessions, to_arrow(sessions, SILVER_SESSIONS), partition_by=["session_date"],
                         operation="silver_rebuild", metadata=meta)
        write_state(paths, tables, bronze_version=changes.version, mode="rebuild")
    result.events_written, result.identities_added = events.height, identity.height
    result.sessions_written = sessions.height
    linked = pl.col("anonymous_id").is_in(identity["anonymous_id"].implode())
    result.persons_restitched = events.filter(pl.col("user_id").is_null() & linked)["anonymous_id"].n_unique()
    result.elapsed_s = time.perf_counter() - started
    return result

"""The three commits of an incremental silver build: identity_map, events, sessions — each staged first.

Each ``stage_*`` function computes what its table would receive (frames in memory, no commit):
identity rows, then the events (read with the staged identity rows laid over the stored map), then
the sessions (read with the staged event rows laid over the stored events). The build audits the
staged frames (``lake.silver.audit``) and only then calls the ``commit_*`` functions, in the same
order (write-audit-publish, ``lake.wap``).

Each step reads only what the change touches (the devices linked, the event_date partitions of
the new rows and of the re-attributed devices, the sessions near the changed instants) and
commits at most once (events: at most four times: the re-attributed rows in place, a compacted
partition, an append of identified and one of anonymous events). Each is a function of (silver
tables, bronze rows): given rows silver already reflects, it finds nothing to change and commits
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from lake._failpoints import failpoint
from lake.paths import LakePaths
from lake.schemas import SILVER_EVENTS, SILVER_IDENTITY_MAP, SILVER_SESSIONS, UTC_TS
from lake.silver.sessions import (
    SESSION_GAP,
    SESSION_INPUT,
    affected_sessions,
    event_windows,
    events_in_windows,
    sessionize,
    window_dates,
)
from lake.silver.tables import FILE_BYTES, Tables, date_predicate, string_in_predicate, to_arrow
from lake.silver.transform import IdentityUpdate, link_candidates, resolve_person, silver_events, update_identities

__all__ = ["EVENT_LAYOUT", "EventsOutcome", "EventsStage", "SessionsOutcome", "SessionsStage", "commit_events",
           "commit_identity", "commit_sessions", "stage_events", "stage_identity", "stage_sessions"]

_SESSION_KEYS = ["session_id", "person_id", "session_start", "session_end", "session_date"]
_EVENT_KEYS = ["event_id", "event_date", "event_ts", "user_id", "anonymous_id", "person_id"]
_EVENT_ORDER = ["event_date", "event_ts", "event_id"]
# File layout of silver/events: per day, events with a user_id first, then the anonymous ones (the
# only rows a later sign-in can re-attribute), each in event-time order. Anonymous rows are written
# to files of their own, so re-attributing a device rewrites anonymous files only (~1 in 5 rows),
# and the null counts in the Delta log let the rewrite skip every file that holds no anonymous row.
EVENT_LAYOUT = [pl.col("event_date"), pl.col("user_id").is_null(), pl.col("event_ts"), pl.col("event_id")]
_COMPACT_AFTER_FILES = 24  # small files (appends) a partition may take before it is rewritten compact


def _isin(column: str, values: list[Any]) -> pc.Expression:
    return pc.field(column).isin(pa.array(values, pa.string()))


def stage_identity(paths: LakePaths, tables: Tables, bronze: pl.DataFrame) -> IdentityUpdate:
    """The earliest links the new bronze rows carry, as the rows silver/identity_map would receive."""
    candidates = link_candidates(bronze)
    if candidates.height == 0:
        return IdentityUpdate(candidates, 0, 0, {})
    existing = tables.read(paths.silver_identity_map, SILVER_IDENTITY_MAP,
                           filter=_isin("anonymous_id", candidates["anonymous_id"].to_list()))
    return update_identities(existing, candidates)


def commit_identity(paths: LakePaths, tables: Tables, update: IdentityUpdate, *, metadata: dict[str, Any]) -> None:
    """Upsert the staged identity rows into silver/identity_map (one commit, none when there are none)."""
    if update.rows.height == 0:
        return
    tables.upsert(paths.silver_identity_map, to_arrow(update.rows, SILVER_IDENTITY_MAP), key="anonymous_id",
                  inserts_only=update.changed == 0, operation="silver_identity", metadata=metadata)


def _dates_of_persons(paths: LakePaths, tables: Tables, persons: set[str]) -> set[date]:
    """The event dates holding events of ``persons``: every event lies in one of its person's
    sessions, so the sessions table (small) says which event partitions to open. (Their time spans
    would let Parquet statistics skip files too, but an OR of a few hundred ranges costs ten times
    more to evaluate than it saves.)"""
    if not persons:
        return set()
    spans = tables.read(paths.silver_sessions, SILVER_SESSIONS, columns=["person_id", "session_start", "session_end"],
                        filter=_isin("person_id", sorted(persons)))
    return set(window_dates(spans.rename({"session_start": "lo", "session_end": "hi"})))


@dataclass
class EventsOutcome:
    """What the events step changed; ``dirty`` are the (person_id, event_ts) instants where a
    person gained or lost an event — the input of the sessions step."""

    dirty: pl.DataFrame
    new_rows: int = 0
    reattributed_rows: int = 0
    persons_restitched: int = 0
    partitions: list[date] = field(default_factory=list)


def stage_events(paths: LakePaths, tables: Tables, bronze: pl.DataFrame,
                 identity_update: IdentityUpdate) -> EventsStage:
    """Stage the new rows of silver/events and the re-attributed events of re-linked devices
    (``identity_update``: the staged identity rows, laid over the stored map).

    Only the rows that can change are read: the stored copies of the batch's event ids and the
    anonymous events of the devices whose user changed (their dates come from the sessions
    table). New events are appended (identified and anonymous ones in separate files, see
    ``EVENT_LAYOUT``); re-attributed rows are replaced where they lie (one commit that rewrites only
    the anonymous files holding them, not their whole partitions). A partition that appends left
    with ``_COMPACT_AFTER_FILES`` small files is rewritten whole, in the layout. At most four commits.
    """
    uri = paths.silver_events
    # A stored row changes person only if it is reprocessed (a rerun, a backfill) or its device was
    # re-linked (user_id null): nothing else is read. A reprocessed row is the same bronze row, so it
    # carries the same landing hour — whose files the Parquet statistics single out.
    hours = bronze["_landing_partition"].unique().to_list()
    stored = tables.read(uri, SILVER_EVENTS, columns=_EVENT_KEYS, dates=set(bronze["event_date"].to_list()),
                         filter=_isin("_landing_partition", hours) & _isin("event_id", bronze["event_id"].to_list()))
    previous_person = identity_update.previous_person
    devices = sorted(previous_person)
    if devices:
        located = _dates_of_persons(paths, tables, set(previous_person.values()))
        relinked = pc.field("user_id").is_null() & _isin("anonymous_id", devices)
        linked = tables.read(uri, SILVER_EVENTS, columns=_EVENT_KEYS, dates=located, filter=relinked)
        stored = pl.concat([stored, linked]).unique("event_id", keep="first", maintain_order=True)
    lookup = pl.concat([bronze["anonymous_id"], stored["anonymous_id"]]).drop_nulls().unique().to_list()
    identity = tables.read(paths.silver_identity_map, SILVER_IDENTITY_MAP, columns=["anonymous_id", "user_id"],
                           filter=_isin("anonymous_id", lookup))
    if identity_update.rows.height:  # the staged rows replace the stored ones (what the commit will do)
        staged = identity_update.rows.select("anonymous_id", "user_id").filter(
            pl.col("anonymous_id").is_in(pl.Series(lookup, dtype=pl.String).implode()))
        identity = pl.concat([identity.join(staged.select("anonymous_id"), on="anonymous_id", how="anti"), staged],
                             how="vertical_relaxed")
    fresh = silver_events(bronze, identity)
    now = resolve_person(stored.rename({"person_id": "_old_person"}), identity)
    moved = now.filter(pl.col("person_id").ne_missing(pl.col("_old_person")))
    added = fresh.join(stored.select("event_id"), on="event_id", how="anti")
    dirty = pl.concat([
        added.select("person_id", "event_ts"),
        moved.select("person_id", "event_ts"),
        moved.select(pl.col("_old_person").alias("person_id"), "event_ts"),
    ]).filter(pl.col("person_id").is_not_null()).unique()

    files = tables.files_per_partition(uri, "event_date", smaller_than=FILE_BYTES // 4)
    compact = {d for d in added["event_date"].unique().to_list() if files.get(d, 0) >= _COMPACT_AFTER_FILES}
    # Moved rows in full: the batch's own version when it carries them, else the stored row re-resolved.
    moved_ids = moved["event_id"]
    moved_rows = fresh.filter(pl.col("event_id").is_in(moved_ids.implode()))
    stored_moved = moved_ids.filter(~moved_ids.is_in(moved_rows["event_id"].implode()))
    if stored_moved.len():
        old = tables.read(uri, SILVER_EVENTS, dates=set(moved["event_date"].to_list()),
                          filter=_isin("event_id", stored_moved.to_list()))
        moved_rows = pl.concat([moved_rows, resolve_person(old, identity).select(SILVER_EVENTS.names)])
    in_place = moved_rows.filter(~pl.col("event_date").is_in(sorted(compact)))
    compacted = None
    if compact:
        replaced = pl.concat([moved_rows["event_id"], added["event_id"]]).implode()
        kept = tables.read(uri, SILVER_EVENTS, dates=compact).filter(~pl.col("event_id").is_in(replaced))
        compacted = pl.concat([kept, moved_rows.filter(pl.col("event_date").is_in(sorted(compact))),
                               added.filter(pl.col("event_date").is_in(sorted(compact)))])
    appended = added.filter(~pl.col("event_date").is_in(sorted(compact)))
    touched = compact | set(moved["event_date"].to_list()) | set(appended["event_date"].to_list())
    outcome = EventsOutcome(dirty, added.height, moved.height, moved["_old_person"].drop_nulls().n_unique(),
                            sorted(touched))
    return EventsStage(outcome=outcome, fresh=fresh, added=added, moved_rows=moved_rows, in_place=in_place,
                       compact=compact, compacted=compacted, appended=appended)


@dataclass
class EventsStage:
    """The staged change of silver/events (nothing committed yet).

    Attributes:
        outcome: what the commit will change (counts, dirty instants, partitions).
        fresh: every row of the step's bronze rows, typed and resolved (what the events suite audits).
        added: rows new to the table; moved_rows: stored rows whose person changes.
        in_place / compact / compacted / appended: what each of the (at most four) commits writes.
    """

    outcome: EventsOutcome
    fresh: pl.DataFrame
    added: pl.DataFrame
    moved_rows: pl.DataFrame
    in_place: pl.DataFrame
    compact: set[date]
    compacted: pl.DataFrame | None
    appended: pl.DataFrame

    def changed_rows(self) -> pl.DataFrame:
        """Every row the commit adds or rewrites with new content (added and re-attributed), as stored."""
        both = pa.concat_tables([to_arrow(self.moved_rows, SILVER_EVENTS), to_arrow(self.added, SILVER_EVENTS)])
        return pl.from_arrow(both)  # type: ignore[return-value]


def commit_events(paths: LakePaths, tables: Tables, stage: EventsStage, *, metadata: dict[str, Any]) -> EventsOutcome:
    """Commit the staged change of silver/events: the re-attributed rows in place, a compacted
    partition, an append of identified and one of anonymous events (at most four commits)."""
    uri = paths.silver_events
    in_place, compact, appended = stage.in_place, stage.compact, stage.appended
    if in_place.height:
        anonymous = " AND user_id IS NULL" if in_place["user_id"].null_count() == in_place.height else ""
        predicate = (f"{date_predicate('event_date', in_place['event_date'].unique().to_list())}{anonymous} AND "
                     f"{string_in_predicate('event_id', in_place['event_id'].to_list())}")
        tables.replace_where(uri, to_arrow(in_place.sort(EVENT_LAYOUT), SILVER_EVENTS), predicate=predicate,
                             partition_by=["event_date"], operation="silver_events", metadata=metadata)
        failpoint("silver_between_events_commits")
    if compact and stage.compacted is not None:
        tables.replace_partitions(uri, to_arrow(stage.compacted.sort(EVENT_LAYOUT), SILVER_EVENTS), column="event_date",
                                  days=compact, operation="silver_events", metadata=metadata)
        failpoint("silver_between_events_commits")
    for anonymous_rows in (False, True):  # two commits, so that no file mixes the two (see EVENT_LAYOUT)
        part = appended.filter(pl.col("user_id").is_null() == anonymous_rows)
        tables.append(uri, to_arrow(part.sort(_EVENT_ORDER), SILVER_EVENTS), partition_by=["event_date"],
                      operation="silver_events", metadata=metadata)
    return stage.outcome


@dataclass
class SessionsOutcome:
    """What the sessions step changed: rows inserted or recomputed, sessions gone, partitions."""

    written: int = 0
    removed: int = 0
    partitions: list[date] = field(default_factory=list)


@dataclass
class SessionsStage:
    """The staged change of silver/sessions: the content of the session_date partitions that change."""

    outcome: SessionsOutcome
    rows: pl.DataFrame


def stage_sessions(paths: LakePaths, tables: Tables, events: EventsStage) -> SessionsStage:
    """Recompute the sessions near the dirty instants of the staged events (read with the staged event
    rows laid over the stored ones) and stage the session_date partitions whose content changes."""
    dirty = events.outcome.dirty
    if dirty.height == 0:
        return SessionsStage(SessionsOutcome(), pl.from_arrow(SILVER_SESSIONS.empty_table()))  # type: ignore[arg-type]
    persons = dirty["person_id"].unique().sort().to_list()
    first, last = dirty["event_ts"].min(), dirty["event_ts"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)  # a non-empty Datetime column
    lo = pa.scalar(first - SESSION_GAP, UTC_TS)
    hi = pa.scalar(last + SESSION_GAP, UTC_TS)
    near = _isin("person_id", persons) & (pc.field("session_end") >= lo) & (pc.field("session_start") <= hi)
    existing = tables.read(paths.silver_sessions, SILVER_SESSIONS, columns=_SESSION_KEYS, filter=near)
    affected = affected_sessions(existing, dirty)
    windows = event_windows(affected, dirty)
    dates = window_dates(windows)
    stored = tables.read(paths.silver_events, SILVER_EVENTS, columns=SESSION_INPUT, dates=dates,
                         filter=_isin("person_id", persons))
    changed = events.changed_rows()
    if changed.height:  # what silver/events will hold once the staged events are committed
        staged = changed.filter(pl.col("person_id").is_in(pl.Series(persons, dtype=pl.String).implode())
                                & pl.col("event_date").is_in(pl.Series(dates, dtype=pl.Date).implode()))
        stored = pl.concat([stored.filter(~pl.col("event_id").is_in(changed["event_id"].implode())),
                            staged.select(SESSION_INPUT)])
    fresh = sessionize(events_in_windows(stored, windows))

    days = set(affected["session_date"].to_list()) | set(fresh["session_date"].to_list())
    current = tables.read(paths.silver_sessions, SILVER_SESSIONS, dates=days, partition_column="session_date")
    result = pl.concat([current.filter(~pl.col("session_id").is_in(affected["session_id"].implode())), fresh])
    added = result.join(current, on=SILVER_SESSIONS.names, how="anti", nulls_equal=True)
    removed = current.join(result, on=SILVER_SESSIONS.names, how="anti", nulls_equal=True)
    changed_days = sorted(set(added["session_date"].to_list()) | set(removed["session_date"].to_list()))
    out = result.filter(pl.col("session_date").is_in(changed_days)).sort(["session_date", "person_id", "session_start"])
    gone = current.filter(~pl.col("session_id").is_in(result["session_id"].implode()))
    return SessionsStage(SessionsOutcome(added.height, gone.height, changed_days), out)


def commit_sessions(paths: LakePaths, tables: Tables, stage: SessionsStage, *,
                    metadata: dict[str, Any]) -> SessionsOutcome:
    """Replace the session_date partitions whose content changed with the staged rows (one commit)."""
    if stage.outcome.partitions:
        tables.replace_partitions(paths.silver_sessions, to_arrow(stage.rows, SILVER_SESSIONS), column="session_date",
                                  days=stage.outcome.partitions, operation="silver_sessions", metadata=metadata)
    return stage.outcome

"""The three commits of an incremental silver build: identity_map, events, sessions.

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

__all__ = ["EVENT_LAYOUT", "EventsOutcome", "SessionsOutcome", "apply_identity", "apply_events", "apply_sessions"]

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


def apply_identity(paths: LakePaths, tables: Tables, bronze: pl.DataFrame, *,
                   metadata: dict[str, Any]) -> IdentityUpdate:
    """Upsert the earliest links the new bronze rows carry into silver/identity_map (one commit)."""
    candidates = link_candidates(bronze)
    if candidates.height == 0:
        return IdentityUpdate(candidates, 0, 0, {})
    existing = tables.read(paths.silver_identity_map, SILVER_IDENTITY_MAP,
                           filter=_isin("anonymous_id", candidates["anonymous_id"].to_list()))
    update = update_identities(existing, candidates)
    tables.upsert(paths.silver_identity_map, to_arrow(update.rows, SILVER_IDENTITY_MAP), key="anonymous_id",
                  inserts_only=update.changed == 0, operation="silver_identity", metadata=metadata)
    return update


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


def apply_events(paths: LakePaths, tables: Tables, bronze: pl.DataFrame, previous_person: dict[str, str], *,
                 metadata: dict[str, Any]) -> EventsOutcome:
    """Add the new rows to silver/events and re-attribute the events of re-linked devices.

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
    devices = sorted(previous_person)
    if devices:
        located = _dates_of_persons(paths, tables, set(previous_person.values()))
        relinked = pc.field("user_id").is_null() & _isin("anonymous_id", devices)
        linked = tables.read(uri, SILVER_EVENTS, columns=_EVENT_KEYS, dates=located, filter=relinked)
        stored = pl.concat([stored, linked]).unique("event_id", keep="first", maintain_order=True)
    lookup = pl.concat([bronze["anonymous_id"], stored["anonymous_id"]]).drop_nulls().unique().to_list()
    identity = tables.read(paths.silver_identity_map, SILVER_IDENTITY_MAP, columns=["anonymous_id", "user_id"],
                           filter=_isin("anonymous_id", lookup))
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
    if in_place.height:
        anonymous = " AND user_id IS NULL" if in_place["user_id"].null_count() == in_place.height else ""
        predicate = (f"{date_predicate('event_date', in_place['event_date'].unique().to_list())}{anonymous} AND "
                     f"{string_in_predicate('event_id', in_place['event_id'].to_list())}")
        tables.replace_where(uri, to_arrow(in_place.sort(EVENT_LAYOUT), SILVER_EVENTS), predicate=predicate,
                             partition_by=["event_date"], operation="silver_events", metadata=metadata)
        failpoint("silver_between_events_commits")
    if compact:
        replaced = pl.concat([moved_rows["event_id"], added["event_id"]]).implode()
        kept = tables.read(uri, SILVER_EVENTS, dates=compact).filter(~pl.col("event_id").is_in(replaced))
        out = pl.concat([kept, moved_rows.filter(pl.col("event_date").is_in(sorted(compact))),
                         added.filter(pl.col("event_date").is_in(sorted(compact)))])
        tables.replace_partitions(uri, to_arrow(out.sort(EVENT_LAYOUT), SILVER_EVENTS), column="event_date",
                                  days=compact, operation="silver_events", metadata=metadata)
        failpoint("silver_between_events_commits")
    appended = added.filter(~pl.col("event_date").is_in(sorted(compact)))
    for anonymous_rows in (False, True):  # two commits, so that no file mixes the two (see EVENT_LAYOUT)
        part = appended.filter(pl.col("user_id").is_null() == anonymous_rows)
        tables.append(uri, to_arrow(part.sort(_EVENT_ORDER), SILVER_EVENTS), partition_by=["event_date"],
                      operation="silver_events", metadata=metadata)
    return EventsOutcome(dirty, added.height, moved.height, moved["_old_person"].drop_nulls().n_unique(),
                         sorted(compact | set(moved["event_date"].to_list()) | set(appended["event_date"].to_list())))


@dataclass
class SessionsOutcome:
    """What the sessions step changed: rows inserted or recomputed, sessions gone, partitions."""

    written: int = 0
    removed: int = 0
    partitions: list[date] = field(default_factory=list)


def apply_sessions(paths: LakePaths, tables: Tables, dirty: pl.DataFrame, *,
                   metadata: dict[str, Any]) -> SessionsOutcome:
    """Recompute the sessions near the dirty instants and replace the session_date partitions
    whose content changed (one commit)."""
    if dirty.height == 0:
        return SessionsOutcome()
    persons = dirty["person_id"].unique().sort().to_list()
    first, last = dirty["event_ts"].min(), dirty["event_ts"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)  # a non-empty Datetime column
    lo = pa.scalar(first - SESSION_GAP, UTC_TS)
    hi = pa.scalar(last + SESSION_GAP, UTC_TS)
    near = _isin("person_id", persons) & (pc.field("session_end") >= lo) & (pc.field("session_start") <= hi)
    existing = tables.read(paths.silver_sessions, SILVER_SESSIONS, columns=_SESSION_KEYS, filter=near)
    affected = affected_sessions(existing, dirty)
    windows = event_windows(affected, dirty)
    events = tables.read(paths.silver_events, SILVER_EVENTS, columns=SESSION_INPUT, dates=window_dates(windows),
                         filter=_isin("person_id", persons))
    fresh = sessionize(events_in_windows(events, windows))

    days = set(affected["session_date"].to_list()) | set(fresh["session_date"].to_list())
    current = tables.read(paths.silver_sessions, SILVER_SESSIONS, dates=days, partition_column="session_date")
    result = pl.concat([current.filter(~pl.col("session_id").is_in(affected["session_id"].implode())), fresh])
    added = result.join(current, on=SILVER_SESSIONS.names, how="anti", nulls_equal=True)
    removed = current.join(result, on=SILVER_SESSIONS.names, how="anti", nulls_equal=True)
    changed_days = sorted(set(added["session_date"].to_list()) | set(removed["session_date"].to_list()))
    if changed_days:
        out = result.filter(pl.col("session_date").is_in(changed_days))
        out = out.sort(["session_date", "person_id", "session_start"])
        tables.replace_partitions(paths.silver_sessions, to_arrow(out, SILVER_SESSIONS), column="session_date",
                                  days=changed_days, operation="silver_sessions", metadata=metadata)
    gone = current.filter(~pl.col("session_id").is_in(result["session_id"].implode()))
    return SessionsOutcome(added.height, gone.height, changed_days)

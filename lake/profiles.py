"""Landing profiles: what one landing hour looked like, in a few hundred counts.

The drift gates (``expectations.anomaly``) compare an hour with the days before it. Re-reading a
week of bronze every hour would cost more than the hour itself, so each hour is reduced once to
counts and kept in ``$ROOT/delta/observability/landing_profiles`` (partitioned by landing_date,
replaced per hour, so a rerun is idempotent):

- ``event_lines``: lines per event name (bronze rows and quarantined lines alike);
- ``property``: lines carrying each ``event.property`` — planned or not (quarantined lines are
  read back from their masked raw line, so an unplanned property is counted although its lines
  never reach bronze);
- ``source_lines``: lines per source — the family of the landing file, e.g. ``collector-*.jsonl``
  or ``*.gz`` (:func:`source_of`; the write key is never stored) — bronze rows and quarantined lines;
- ``quarantine``: quarantined lines per ``violation_type|source|event_name`` (event empty when the
  line had none), for the quarantine-rate gate;
- ``column:<name>``: counts per value of a key column, for distribution drift. A bronze column
  counts distinct people (user_id, else anonymous_id) per value, not events: one person's events
  share a device and browser, so counting events would make a handful of busy visitors look like
  a shift; an event's numeric property is counted per bin, one unit per event.

Hours whose profile is missing (a lake that predates the gates, or a gate not yet run) are
profiled on demand when they are needed as history.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from lake import delta_io
from lake.landing import parse_partition_key
from lake.ledger import read_ledger
from lake.locks import table_lock
from lake.paths import LakePaths
from lake.schemas import BRONZE_EVENTS, BRONZE_QUARANTINE

__all__ = ["LANDING_PROFILES", "Profile", "hour_profile", "profile_hours", "read_profiles", "source_of"]

LANDING_PROFILES = pa.schema([
    pa.field("landing_partition", pa.string(), nullable=False),
    pa.field("landing_date", pa.date32(), nullable=False),
    pa.field("dimension", pa.string(), nullable=False),  # event_lines | property | column:<name>
    pa.field("key", pa.string(), nullable=False),
    pa.field("count", pa.int64(), nullable=False),
])
_LOCK = "observability_profiles"
_BRONZE_COLUMNS = ("device_type", "browser_family", "locale")


@dataclass
class Profile:
    """Counts of one or more landing hours (summed), by dimension then key."""

    hours: set[str] = field(default_factory=set)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, partition: str, dimension: str, key: str, count: int) -> None:
        self.hours.add(partition)
        bucket = self.counts.setdefault(dimension, {})
        bucket[key] = bucket.get(key, 0) + count

    def dimension(self, name: str) -> dict[str, int]:
        return self.counts.get(name, {})

    @classmethod
    def total(cls, profiles: Iterable[Profile]) -> Profile:
        """The sum of several profiles (e.g. the hours of a baseline)."""
        out = cls()
        for profile in profiles:
            out.hours |= profile.hours
            for dimension, counts in profile.counts.items():
                bucket = out.counts.setdefault(dimension, {})
                for key, count in counts.items():
                    bucket[key] = bucket.get(key, 0) + count
        return out

    def columns(self) -> dict[str, dict[str, int]]:
        """Key-column counts, by column name."""
        return {d.removeprefix("column:"): c for d, c in self.counts.items() if d.startswith("column:")}


_SOURCE_SUFFIXES = (".jsonl.gz", ".json.gz", ".jsonl", ".json", ".gz")  # longest first (lake.landing's suffixes)
_SOURCE_PREFIX = re.compile(r"^([A-Za-z]+)[-_]")


def source_of(source_file: str) -> str:
    """The source of a landing file, by the family of its name: ``collector-*.jsonl`` (the collector),
    ``sim-*.jsonl`` (the simulator), ``*.gz`` (a Segment S3 dump), ``*.json.gz`` (RudderStack)."""
    name = source_file.rsplit("/", 1)[-1]
    suffix = next((s for s in _SOURCE_SUFFIXES if name.endswith(s)), "")
    prefix = _SOURCE_PREFIX.match(name)
    return f"{prefix.group(1)}-*{suffix}" if prefix else f"*{suffix}"


def _bin_label(edges: list[float], value: float) -> str:
    i = bisect.bisect_right(edges, value)
    if i == 0:
        return f"<{edges[0]:g}"
    if i == len(edges):
        return f">={edges[-1]:g}"
    return f"[{edges[i - 1]:g},{edges[i]:g})"


_BATCH_LINES = 1_000_000  # landed lines profiled together at most (one DuckDB pass over their rows)


def _compute(paths: LakePaths, event_dates: Mapping[str, list[dt.date]], columns: Mapping[str, Mapping]) -> pa.Table:
    """The profile rows of the hours of ``event_dates`` (hour -> the event dates its rows carry):
    one read of bronze and of quarantine, one DuckDB pass, grouped by hour."""
    import duckdb

    keys = sorted(event_dates)
    dates = sorted({d for ds in event_dates.values() for d in ds})
    bronze_columns = ["_landing_partition", "_source_file", "event_name", "properties", "user_id", "anonymous_id",
                      *_BRONZE_COLUMNS]
    bronze = delta_io.read(
        paths.bronze_events, BRONZE_EVENTS, columns=bronze_columns,
        partitions=[("event_date", "in", dates)], filter=pc.field("_landing_partition").isin(keys),
    ) if dates else BRONZE_EVENTS.empty_table().select(bronze_columns)
    every_quarantined = delta_io.read(
        paths.bronze_quarantine, BRONZE_QUARANTINE,
        columns=["landing_partition", "event_name", "raw_line", "violation_type", "source_file"],
        partitions=[("landing_date", "in", sorted({parse_partition_key(k).date() for k in keys}))],
        filter=pc.field("landing_partition").isin(keys),
    )
    quarantine = every_quarantined.filter(pc.is_valid(every_quarantined["event_name"]))
    rows: list[tuple[str, str, str, int]] = []
    con = duckdb.connect()
    try:
        con.register("bronze", bronze)
        con.register("quarantine", quarantine)
        rows += con.execute("""
            select hour, 'event_lines', event_name, count(*) from (
                select _landing_partition as hour, event_name from bronze
                union all select landing_partition, event_name from quarantine
            ) group by all
        """).fetchall()
        rows += con.execute("""
            with keyed as (
                select _landing_partition as hour, event_name, json_keys(properties) as props from bronze
                union all
                select landing_partition, event_name, json_keys(json_extract(raw_line, '$.properties'))
                from quarantine where json_valid(raw_line) and json_type(raw_line, '$.properties') = 'OBJECT'
            )
            select hour, 'property', event_name || '.' || prop, count(*)
            from (select hour, event_name, unnest(props) as prop from keyed) group by all
        """).fetchall()
        con.register("every_quarantined", every_quarantined)
        sources: dict[tuple[str, str, str], int] = {}
        for hour, dimension, file, count in con.execute("""
            select hour, dimension, file, count(*) from (
                select _landing_partition as hour, 'source_lines' as dimension, _source_file as file from bronze
                union all select landing_partition, 'source_lines', source_file from every_quarantined
                union all select landing_partition,
                                 'quarantine:' || violation_type || '|' || coalesce(event_name, ''), source_file
                from every_quarantined
            ) group by all
        """).fetchall():
            # the source is the file's family: the files of an hour are few, so this is mapped here
            if dimension == "source_lines":
                tally_key = (hour, "source_lines", source_of(file))
            else:
                violation, _bar, event_name = dimension.removeprefix("quarantine:").partition("|")
                tally_key = (hour, "quarantine", f"{violation}|{source_of(file)}|{event_name}")
            sources[tally_key] = sources.get(tally_key, 0) + count
        rows += [(hour, dimension, key, n) for (hour, dimension, key), n in sources.items()]
        for name, spec in columns.items():
            dimension = f"column:{name}"
            if name in _BRONZE_COLUMNS:
                rows += con.execute(f"select _landing_partition, '{dimension}', coalesce({name}, '(null)'), "
                                    "count(distinct coalesce(user_id, anonymous_id)) from bronze group by all"
                                    ).fetchall()
            elif "." in name and spec.get("bins"):
                event, prop = name.split(".", 1)
                values = con.execute("select _landing_partition, try_cast(json_extract_string(properties, '$.' || ?) "
                                     "as double) from bronze where event_name = ?", [prop, event]).fetchall()
                edges = [float(e) for e in spec["bins"]]
                tally: dict[tuple[str, str], int] = {}
                for hour, v in values:
                    label = "(null)" if v is None else _bin_label(edges, v)
                    tally[(hour, label)] = tally.get((hour, label), 0) + 1
                rows += [(hour, dimension, k, n) for (hour, k), n in tally.items()]
            else:
                raise ValueError(f"distribution_drift column {name!r}: use one of {list(_BRONZE_COLUMNS)} "
                                 "or '<event>.<numeric property>' with bins")
    finally:
        con.close()
    return pa.Table.from_pylist(
        [{"landing_partition": h, "landing_date": parse_partition_key(h).date(), "dimension": d, "key": k,
          "count": int(n)} for h, d, k, n in sorted(rows)],
        schema=LANDING_PROFILES)


def _store(paths: LakePaths, keys: list[str], table: pa.Table) -> None:
    """Replace the stored profiles of ``keys`` with ``table`` (one commit)."""
    days = sorted({parse_partition_key(k).date() for k in keys})  # validated: only then used in a predicate
    predicate = (f"landing_date IN ({', '.join(repr(d.isoformat()) for d in days)}) AND "
                 f"landing_partition IN ({', '.join(repr(k) for k in sorted(keys))})")
    with table_lock(paths, _LOCK):
        if delta_io.open_table(paths.landing_profiles) is None and table.num_rows == 0:
            return
        delta_io.replace_where(paths.landing_profiles, table, predicate, partition_by=["landing_date"],
                               operation="profile",
                               metadata={"partition": keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}"})


def _profiles(table: pa.Table) -> dict[str, Profile]:
    out: dict[str, Profile] = {}
    for r in table.to_pylist():
        out.setdefault(r["landing_partition"], Profile()).add(r["landing_partition"], r["dimension"], r["key"],
                                                              r["count"])
    return out


def read_profiles(paths: LakePaths, keys: Iterable[str]) -> dict[str, Profile]:
    """The stored profiles of ``keys``, per hour (only their landing_date partitions are opened)."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    return _profiles(_read(paths, keys))


def _read(paths: LakePaths, keys: list[str]) -> pa.Table:
    days = sorted({parse_partition_key(k).date() for k in keys})
    return delta_io.read(paths.landing_profiles, LANDING_PROFILES, partitions=[("landing_date", "in", days)],
                         filter=pc.field("landing_partition").isin(keys))


def profile_hours(paths: LakePaths, keys: Iterable[str], *, columns: Mapping[str, Mapping],
                  refresh: Iterable[str] = ()) -> dict[str, Profile]:
    """Profiles of the ingested hours among ``keys``, per hour: stored ones are read, missing ones (and
    those in ``refresh``) computed from bronze and quarantine and stored. Hours never ingested are
    left out; an ingested hour without lines has an empty profile.

    The hours to compute are read and profiled together, in batches of at most a million landed
    lines; a recomputed profile equal to the stored one is not written again.
    """
    keys = sorted(set(keys))
    if not keys:
        return {}
    refresh = set(refresh)
    stored_rows = _read(paths, keys)
    stored = _profiles(stored_rows)
    missing = [k for k in keys if k not in stored or k in refresh]
    # The ledger says which of the missing hours were ingested, and the dates their events carry.
    ledger = {r["landing_partition"]: (list(r["event_dates"] or []), r["lines_landed"])
              for r in read_ledger(paths, missing).to_pylist()} if missing else {}
    batches: list[list[str]] = []
    lines = 0
    for key in (k for k in missing if k in ledger):
        if not batches or (lines and lines + ledger[key][1] > _BATCH_LINES):
            batches.append([])
            lines = 0
        batches[-1].append(key)
        lines += ledger[key][1]
    for batch in batches:
        table = _compute(paths, {k: ledger[k][0] for k in batch}, columns)
        fresh = _profiles(table)
        changed = [k for k in batch if _rows(table, k) != _rows(stored_rows, k)]
        if changed:
            _store(paths, changed, table.filter(pc.is_in(table["landing_partition"], value_set=pa.array(changed))))
        for key in batch:
            stored[key] = fresh.get(key, Profile(hours={key}))
    return {k: stored[k] for k in keys if k in stored}


def _rows(table: pa.Table, key: str) -> list[tuple]:
    part = table.filter(pc.equal(table["landing_partition"], key)) if table.num_rows else table
    return sorted((r["dimension"], r["key"], r["count"]) for r in part.to_pylist())


def hour_profile(paths: LakePaths, key: str, *, columns: Mapping[str, Mapping]) -> Profile:
    """The profile of one landing hour, recomputed from the tables (and stored)."""
    return profile_hours(paths, [key], columns=columns, refresh=[key]).get(key, Profile(hours={key}))

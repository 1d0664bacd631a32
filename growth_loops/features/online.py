"""The online store: each entity's latest feature values, served by id in milliseconds.

Backed by one SQLite file (like Feast's local online store), one table per feature view:

* key: the view's entity column (``TEXT PRIMARY KEY``, a ``WITHOUT ROWID`` table, so a lookup
  is one B-tree descent);
* ``valid_from``: integer microseconds since the Unix epoch, UTC;
* one column per feature, typed ``INTEGER`` / ``REAL`` / ``TEXT`` / ``BOOLEAN`` after its dtype.

A table is named ``fv_<view name>``. Names are only ever put into SQL as quoted identifiers, and
only after checking they are plain identifiers (letters, digits, underscores); values are always
bound parameters.

The file is in WAL mode, so lookups are never blocked by a materialization writing: readers see
the last committed state, and a write (one transaction) becomes visible all at once.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

import polars as pl

from growth_loops.features.errors import FeatureStoreError
from growth_loops.features.pit import VALID_FROM
from growth_loops.features.views import FeatureView

__all__ = ["OnlineStore"]

_TABLE_PREFIX = "fv_"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SQL_TYPES = {"int64": "INTEGER", "float64": "REAL", "string": "TEXT", "bool": "BOOLEAN"}
_POLARS_DTYPES: dict[str, pl.DataType] = {
    "int64": pl.Int64(),
    "float64": pl.Float64(),
    "string": pl.String(),
    "bool": pl.Boolean(),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Ids bound per statement. IN-lists are padded up to one of these lengths, so a handful of
# statements cover every request size and stay in the connection's prepared-statement cache.
_CHUNK_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_MAX_CHUNK = _CHUNK_SIZES[-1]
_BUSY_TIMEOUT_S = 10.0
_MMAP_BYTES = 1 << 30  # address space only; pages are shared with the OS cache, not copied
_CACHE_KIB = 64 * 1024


@dataclass(frozen=True)
class _ReadPlan:
    """How to read one view from the file as it is now (cached until the schema changes)."""

    table: str | None  # quoted table name; None when the view was never written
    present: tuple[bool, ...]  # per feature, in declaration order: is there a column for it?
    select: str  # "SELECT key, valid_from, <present features> FROM table WHERE key IN "


class OnlineStore:
    """Latest feature values per entity, in a SQLite file, for low-latency lookups by id.

    ``write`` upserts materialized rows (a newer ``valid_from`` replaces an older one, never the
    other way round); ``get_online_features`` returns them for a batch of ids, nulling values past
    their view's TTL; ``delete`` erases entities. One connection is opened lazily on first use and
    reused (guarded by a lock, so one store may be shared by threads); ``close`` releases it, and
    the store reopens on the next call. Several stores or processes may share one file.

    Args:
        path: The SQLite file. Its parent directories are created on the first write; reads of a
            file that does not exist yet find nothing (and do not create it).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._schema_version: int | None = None
        self._plans: dict[FeatureView, _ReadPlan] = {}
        self._valid_views: set[FeatureView] = set()

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection, if open. The store can still be used: it reopens lazily."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._plans.clear()
                self._schema_version = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OnlineStore({str(self.path)!r})"

    def _connection(self, *, create: bool) -> sqlite3.Connection | None:
        """The open connection; opens it first. None when the file is absent and not ``create``."""
        if self._conn is not None:
            return self._conn
        if not self.path.exists():
            if not create:
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=_BUSY_TIMEOUT_S,
            isolation_level=None,  # autocommit; transactions are explicit BEGIN ... COMMIT
            check_same_thread=False,  # safe: every use holds self._lock
            cached_statements=256,
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL never corrupts; a power cut may lose the last commits, which the
            # next materialization rewrites anyway.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
            conn.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise FeatureStoreError(
                f"online store {str(self.path)!r}",
                f"the file cannot be opened as a SQLite database ({exc})",
                "Point the store at a new path, or delete the file and materialize again.",
            ) from exc
        self._conn = conn
        return conn

    # -- writing ---------------------------------------------------------------------------

    def write(self, view: FeatureView, rows: pl.DataFrame) -> int:
        """Upsert materialized feature values of ``view``, one stored row per entity.

        An entity's stored row is replaced only by a row with a ``valid_from`` at least as late
        as the stored one: re-materializing an old day never regresses a newer value, and
        rewriting the same rows is idempotent. Within ``rows``, an entity's latest
        ``valid_from`` wins, and of equal ones the last row. Null feature values are stored as
        null (a row of nulls is a valid tombstone, e.g. after consent was revoked); float NaN
        is stored as null too, SQLite having no NaN. The whole write is one transaction.

        If ``view`` declares features the stored table lacks, their columns are added (existing
        rows hold null for them until written again); columns of features the view no longer
        declares are left in place but nulled in every row this write replaces.

        Args:
            view: The view the rows belong to.
            rows: Columns ``view.entity`` (string ids, non-null), ``valid_from`` (time-zone-aware
                datetimes, non-null; stored at microsecond resolution) and every feature of the
                view (cast to its declared dtype). Other columns are ignored.

        Returns:
            How many entities' stored rows were inserted or replaced.

        Raises:
            FeatureStoreError: (a ``ValueError``) when a column is missing, the entity column is
                not strings or has nulls, ``valid_from`` is not time-zone-aware or has nulls, a
                feature cannot be cast to its dtype, a name is not a plain identifier, or the
                stored table disagrees with the view on its entity or a feature's dtype.
        """
        subject = f"rows for {view.name!r}"
        table = _table_name(view)
        features = view.feature_names
        missing = [c for c in (view.entity, VALID_FROM, *features) if c not in rows.columns]
        if missing:
            raise FeatureStoreError(
                subject,
                f"missing columns {', '.join(missing)} (has {', '.join(rows.columns) or 'none'})",
                f"Pass the view's entity column, {VALID_FROM!r} and every feature of the view.",
            )
        key_dtype = rows.schema[view.entity]
        if key_dtype != pl.String:
            raise FeatureStoreError(
                f"{subject}.{view.entity}",
                f"entity ids must be strings, got {key_dtype}",
                f"Cast the column first, e.g. pl.col({view.entity!r}).cast(pl.String).",
            )
        if rows[view.entity].null_count():
            raise FeatureStoreError(
                f"{subject}.{view.entity}",
                f"{rows[view.entity].null_count()} rows have a null entity id",
                "Drop those rows; the online store is looked up by id.",
            )
        valid_dtype = rows.schema[VALID_FROM]
        if not isinstance(valid_dtype, pl.Datetime) or valid_dtype.time_zone is None:
            raise FeatureStoreError(
                f"{subject}.{VALID_FROM}",
                f"timestamps must be time-zone-aware datetimes, got {valid_dtype}",
                "Make them UTC-aware, e.g. .dt.replace_time_zone('UTC') if they are naive UTC, "
                "so validity and TTL are measured in the same instants.",
            )
        if rows[VALID_FROM].null_count():
            raise FeatureStoreError(
                f"{subject}.{VALID_FROM}",
                f"{rows[VALID_FROM].null_count()} rows have a null {VALID_FROM}",
                "Every row needs the moment its values became valid; fix or drop those rows.",
            )
        try:
            typed = rows.select(
                pl.col(view.entity),
                pl.col(VALID_FROM).dt.epoch("us").alias(VALID_FROM),
                *(
                    _stored(pl.col(f.name).cast(_POLARS_DTYPES[f.dtype], strict=True), f.dtype)
                    for f in view.features
                ),
            )
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
            raise FeatureStoreError(
                subject,
                f"a feature column does not match its declared dtype ({exc})",
                "Fix the source column's type or the Feature's dtype.",
            ) from exc
        # One row per entity: the latest valid_from, the last row among equal ones. Sorted by key,
        # so the upsert walks the B-tree in order.
        typed = (
            typed.with_row_index("__online_row")
            .sort(VALID_FROM, "__online_row")
            .unique(view.entity, keep="last")
            .drop("__online_row")
            .sort(view.entity)
        )

        with self._lock:
            conn = self._connection(create=True)
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            try:
                columns = self._prepare_table(conn, view, table)
                key, names = _quote(view.entity), [_quote(n) for n in features]
                stale = [c for c in columns if c not in (view.entity, VALID_FROM, *features)]
                assignments = ", ".join(
                    [f"{_quote(VALID_FROM)} = excluded.{_quote(VALID_FROM)}"]
                    + [f"{n} = excluded.{n}" for n in names]
                    + [f"{_quote(c)} = NULL" for c in stale]
                )
                sql = (
                    f"INSERT INTO {table} ({key}, {_quote(VALID_FROM)}, {', '.join(names)}) "
                    f"VALUES ({', '.join('?' * (len(names) + 2))}) "
                    f"ON CONFLICT ({key}) DO UPDATE SET {assignments} "
                    f"WHERE excluded.{_quote(VALID_FROM)} >= {table}.{_quote(VALID_FROM)}"
                )
                before = conn.total_changes
                conn.executemany(sql, zip(*(typed[c].to_list() for c in typed.columns), strict=True))
                changed = conn.total_changes - before
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return changed

    def _prepare_table(self, conn: sqlite3.Connection, view: FeatureView, table: str) -> list[str]:
        """Create ``view``'s table or add its new feature columns; return the table's columns.

        Runs inside the write transaction, so the schema read is the one written against.
        """
        name = _TABLE_PREFIX + view.name
        info = _table_info(conn, name)
        if info is None:
            # SQLite table names are case-insensitive; refuse to share one between two views.
            other = conn.execute(
                "SELECT name FROM sqlite_master WHERE lower(name) = lower(?)", (name,)
            ).fetchone()
            if other is not None:
                raise FeatureStoreError(
                    f"feature view {view.name!r}",
                    f"the online store already has a table {other[0]!r}, which SQLite treats as "
                    f"the same name as {name!r}",
                    "Rename the view so view names differ by more than letter case.",
                )
            columns = ", ".join(
                [f"{_quote(view.entity)} TEXT PRIMARY KEY NOT NULL",
                 f"{_quote(VALID_FROM)} INTEGER NOT NULL"]
                + [f"{_quote(f.name)} {_SQL_TYPES[f.dtype]}" for f in view.features]
            )
            conn.execute(f"CREATE TABLE {table} ({columns}) WITHOUT ROWID")
            return [view.entity, VALID_FROM, *view.feature_names]
        present = _check_table(view, name, info)
        for f in view.features:
            if f.name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {_quote(f.name)} {_SQL_TYPES[f.dtype]}")
        return [*(c for c, _, _ in info), *(n for n in view.feature_names if n not in present)]

    # -- reading ---------------------------------------------------------------------------

    def get_online_features(
        self,
        entity_ids: Sequence[str | None],
        views: Sequence[FeatureView],
        *,
        now: datetime | None = None,
    ) -> pl.DataFrame:
        """Look up the current feature values of a batch of entities.

        A value is served while it is fresh: it is null when the entity has no stored row or
        when ``now - valid_from > view.ttl`` (a value exactly ``ttl`` old is still served). The
        store keeps only each entity's latest row, which is served even if its ``valid_from``
        lies after ``now``. A view never written to this store yields nulls.

        Args:
            entity_ids: Ids to look up; the result has one row per id in this order,
                duplicates included. A None id gets null features.
            views: The views to read; they must all have the same entity column and no feature
                name in common.
            now: The moment freshness is judged at (time-zone-aware); defaults to the current
                time.

        Returns:
            A frame with the entity column (``String``), then each view's features in view and
            declaration order, with their declared dtypes.

        Raises:
            FeatureStoreError: (a ``ValueError``) when no view is given, the views' entity
                columns differ, feature names clash, ``now`` is naive, an id is not a string, a
                name is not a plain identifier, or the stored table disagrees with a view on its
                entity or a feature's dtype.
        """
        if not views:
            raise FeatureStoreError(
                "get_online_features", "no views were given", "Pass at least one FeatureView."
            )
        entity = views[0].entity
        if any(v.entity != entity for v in views):
            raise FeatureStoreError(
                "get_online_features",
                "the views have different entity columns: "
                + ", ".join(f"{v.name!r} by {v.entity!r}" for v in views),
                "Request views of different entities separately, one entity's ids at a time.",
            )
        seen: dict[str, str] = {}
        for v in views:
            if v not in self._valid_views:  # checked even when there is no file to read yet
                _table_name(v)
                self._valid_views.add(v)
            for name in v.feature_names:
                if name in seen:
                    problem = (
                        f"view {v.name!r} is requested twice"
                        if seen[name] == v.name
                        else f"feature {name!r} is in both {seen[name]!r} and {v.name!r}"
                    )
                    raise FeatureStoreError(
                        "get_online_features",
                        problem,
                        "Request the views separately (one call per view) and rename the "
                        "columns before combining the frames.",
                    )
                seen[name] = v.name
        if now is None:
            now = datetime.now(UTC)
        elif now.tzinfo is None or now.utcoffset() is None:
            raise FeatureStoreError(
                "get_online_features",
                f"now must be time-zone-aware, got the naive {now.isoformat()}",
                "Pass an aware datetime, e.g. datetime.now(UTC).",
            )
        now_us = (now - _EPOCH) // _MICROSECOND
        if isinstance(entity_ids, str):
            raise FeatureStoreError(
                "get_online_features",
                f"entity_ids is the single string {entity_ids!r}",
                "Pass a sequence of ids, e.g. [entity_id].",
            )
        ids = entity_ids.to_list() if isinstance(entity_ids, pl.Series) else list(entity_ids)
        for i in ids:
            if i is not None and not isinstance(i, str):
                raise FeatureStoreError(
                    "get_online_features",
                    f"entity ids must be strings, got {i!r} ({type(i).__name__})",
                    "Pass the ids as strings, as they were written.",
                )

        columns: dict[str, list | pl.Series] = {entity: ids}
        schema: dict[str, pl.DataType] = {entity: pl.String()}
        unique = list(dict.fromkeys(i for i in ids if i is not None)) if ids else []
        with self._lock:
            conn = self._connection(create=False) if unique else None
            if conn is not None:
                self._refresh_plans(conn)
            many = conn is not None and (len(views) > 1 or len(unique) > _MAX_CHUNK)
            if many and conn is not None:  # (many implies a connection)
                conn.execute("BEGIN")  # one snapshot for every statement of this lookup
            try:
                for view in views:
                    self._read_view(conn, view, ids, unique, now_us, columns, schema)
            finally:
                if many and conn is not None:
                    conn.execute("COMMIT")
        return pl.DataFrame(columns, schema=schema)

    def _read_view(
        self,
        conn: sqlite3.Connection | None,
        view: FeatureView,
        ids: list,
        unique: list[str],
        now_us: int,
        columns: dict[str, list | pl.Series],
        schema: dict[str, pl.DataType],
    ) -> None:
        """Add ``view``'s feature columns, aligned with ``ids``, to ``columns``/``schema``."""
        for f in view.features:
            schema[f.name] = _POLARS_DTYPES[f.dtype]
        plan = self._plan(conn, view) if conn is not None else None
        if plan is None or plan.table is None or not any(plan.present):
            for f in view.features:
                columns[f.name] = pl.Series(f.name, [None] * len(ids), _POLARS_DTYPES[f.dtype])
            return
        assert conn is not None  # a plan is only found through a connection
        cutoff = now_us - view.ttl // _MICROSECOND
        found: dict[str, tuple] = {}
        for start in range(0, len(unique), _MAX_CHUNK):
            chunk = unique[start:start + _MAX_CHUNK]
            size = next(s for s in _CHUNK_SIZES if s >= len(chunk))
            params = chunk + [chunk[-1]] * (size - len(chunk))
            sql = f"{plan.select}({', '.join('?' * size)})"
            for row in conn.execute(sql, params):
                if row[1] >= cutoff:
                    found[row[0]] = row
        matched = [found.get(i) for i in ids] if found else None
        position = 2
        for f, present in zip(view.features, plan.present, strict=True):
            if matched is None or not present:
                columns[f.name] = pl.Series(f.name, [None] * len(ids), _POLARS_DTYPES[f.dtype])
                continue
            p = position
            if f.dtype == "bool":  # stored as 0/1
                columns[f.name] = [None if r is None or r[p] is None else r[p] != 0 for r in matched]
            else:
                columns[f.name] = [None if r is None else r[p] for r in matched]
            position += 1

    def _refresh_plans(self, conn: sqlite3.Connection) -> None:
        """Forget cached read plans if any connection changed the file's schema since."""
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        if version != self._schema_version:
            self._plans.clear()
            self._schema_version = version

    def _plan(self, conn: sqlite3.Connection, view: FeatureView) -> _ReadPlan:
        plan = self._plans.get(view)
        if plan is not None:
            return plan
        table = _table_name(view)
        name = _TABLE_PREFIX + view.name
        info = _table_info(conn, name)
        if info is None:
            plan = _ReadPlan(None, (False,) * len(view.features), "")
        else:
            stored = _check_table(view, name, info)
            present = tuple(n in stored for n in view.feature_names)
            selected = [_quote(view.entity), _quote(VALID_FROM)] + [
                _quote(n) for n, p in zip(view.feature_names, present, strict=True) if p
            ]
            plan = _ReadPlan(
                table,
                present,
                f"SELECT {', '.join(selected)} FROM {table} WHERE {_quote(view.entity)} IN ",
            )
        self._plans[view] = plan
        return plan

    # -- erasure and status ----------------------------------------------------------------

    def delete(self, entity_ids: Sequence[str], views: Sequence[FeatureView] | None = None) -> int:
        """Erase entities' stored rows, e.g. for a right-to-erasure request.

        Args:
            entity_ids: Ids whose rows to remove.
            views: The views to erase them from; None means every view table in the file,
                matching the ids against each table's key (erring towards erasing too much:
                the store is a cache that the next materialization refills).

        Returns:
            The number of stored rows removed, summed over the tables (an entity stored in
            three views counts three times).
        """
        if isinstance(entity_ids, str):
            raise FeatureStoreError(
                "delete",
                f"entity_ids is the single string {entity_ids!r}",
                "Pass a sequence of ids, e.g. [entity_id].",
            )
        unique = list(dict.fromkeys(i for i in entity_ids if i is not None))
        tables = None if views is None else [(_table_name(v), v) for v in views]
        with self._lock:
            conn = self._connection(create=False)
            if conn is None or not unique:
                return 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                targets: list[tuple[str, str]] = []  # (quoted table, its key column)
                if tables is None:
                    names = [
                        r[0] for r in conn.execute(
                            "SELECT name FROM sqlite_master WHERE type = 'table' "
                            "AND substr(name, 1, ?) = ?",
                            (len(_TABLE_PREFIX), _TABLE_PREFIX),
                        )
                    ]
                else:
                    names = [_TABLE_PREFIX + v.name for _, v in tables]
                for name in names:
                    info = _table_info(conn, name)
                    if info is not None:
                        key = next(c for c, _, pk in info if pk)
                        targets.append((_quote(name), key))
                before = conn.total_changes
                for table, key in targets:
                    for start in range(0, len(unique), _MAX_CHUNK):
                        chunk = unique[start:start + _MAX_CHUNK]
                        conn.execute(
                            f"DELETE FROM {table} WHERE {_quote(key)} IN ({', '.join('?' * len(chunk))})",
                            chunk,
                        )
                removed = conn.total_changes - before
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return removed

    def drop_view(self, view: FeatureView) -> bool:
        """Remove ``view``'s table and all its rows (e.g. before re-materializing a changed dtype).

        Returns:
            Whether there was a table to drop.
        """
        table = _table_name(view)
        with self._lock:
            conn = self._connection(create=False)
            if conn is None or _table_info(conn, _TABLE_PREFIX + view.name) is None:
                return False
            conn.execute(f"DROP TABLE {table}")
            self._plans.clear()
        return True

    def row_count(self, view: FeatureView) -> int:
        """How many entities have a stored row for ``view`` (expired or not); 0 if never written."""
        table = _table_name(view)
        with self._lock:
            conn = self._connection(create=False)
            if conn is None or _table_info(conn, _TABLE_PREFIX + view.name) is None:
                return 0
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def latest_valid_from(self, view: FeatureView) -> datetime | None:
        """The latest ``valid_from`` stored for ``view`` (UTC), or None if it has no rows."""
        table = _table_name(view)
        with self._lock:
            conn = self._connection(create=False)
            if conn is None or _table_info(conn, _TABLE_PREFIX + view.name) is None:
                return None
            latest = conn.execute(f"SELECT max({_quote(VALID_FROM)}) FROM {table}").fetchone()[0]
        return None if latest is None else _EPOCH + latest * _MICROSECOND


def _stored(column: pl.Expr, dtype: str) -> pl.Expr:
    """A typed feature column as SQLite stores it: NaN as null (SQLite has no NaN)."""
    return column.fill_nan(None) if dtype == "float64" else column


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _table_name(view: FeatureView) -> str:
    """The quoted table name of ``view``, after checking every name the store puts in SQL."""
    subject = f"feature view {view.name!r}"
    names = [("view name", view.name), ("entity column", view.entity)] + [
        ("feature name", n) for n in view.feature_names
    ]
    for kind, name in names:
        if not _IDENTIFIER.match(name):
            raise FeatureStoreError(
                subject,
                f"the {kind} {name!r} is not a plain identifier",
                "Use only letters, digits and underscores (not starting with a digit) in view, "
                "entity and feature names served by the online store.",
            )
    lowered = [n.lower() for n in (view.entity, VALID_FROM, *view.feature_names)]
    if len(set(lowered)) != len(lowered):
        raise FeatureStoreError(
            subject,
            "two of its column names differ only in letter case, which SQLite treats as the same",
            "Rename one of them.",
        )
    return _quote(_TABLE_PREFIX + view.name)


def _table_info(conn: sqlite3.Connection, name: str) -> list[tuple[str, str, int]] | None:
    """``(column, declared type, is key)`` of the table named exactly ``name``, or None."""
    # sqlite_master compares names case-sensitively, PRAGMA table_info does not: check first.
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    if exists is None:
        return None
    return [(r[1], r[2], r[5]) for r in conn.execute(f"PRAGMA table_info({_quote(name)})")]


def _check_table(view: FeatureView, name: str, info: list[tuple[str, str, int]]) -> set[str]:
    """Check the stored table agrees with ``view``; return its column names."""
    subject = f"feature view {view.name!r}"
    fix = (
        "Drop the stored values with OnlineStore.drop_view(view) and materialize the view again, "
        "or give the changed view a new name."
    )
    key = next((c for c, _, pk in info if pk), None)
    if key != view.entity:
        raise FeatureStoreError(
            subject,
            f"the online store's table {name!r} is keyed by {key!r}, not the view's entity "
            f"{view.entity!r}",
            fix,
        )
    declared = {c: t for c, t, _ in info}
    by_lower = {c.lower(): c for c in declared}
    for f in view.features:
        stored = by_lower.get(f.name.lower())
        if stored is None:
            continue
        if stored != f.name:
            raise FeatureStoreError(
                subject,
                f"feature {f.name!r} is stored as {stored!r}, a name differing only in letter case",
                fix,
            )
        if declared[stored].upper() != _SQL_TYPES[f.dtype]:
            raise FeatureStoreError(
                subject,
                f"feature {f.name!r} is declared {f.dtype} but stored as {declared[stored]}",
                fix,
            )
    return set(declared)

"""Delta IO of the silver tables: typed reads into polars, and the kinds of commit a build makes.

* ``upsert`` — append new keys, or rewrite the (small) keyed table when a row changes (identity_map);
* ``replace_partitions`` — one atomic delete-and-add of whole date partitions (events, sessions);
* ``overwrite`` — the whole table in one commit (rebuild, build state);
* ``roll_back`` — ``RESTORE`` to the version the last finished build recorded.

A :class:`Tables` is opened per build, under the silver writer lock: each table's log is brought
up to date once, and the build's own commits keep the objects current (nobody else may commit to
the silver tables while the lock is held), so reads pay no log listing each time.
Every commit carries ``growthlake.operation`` and the bronze version it reflects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lake import delta_io
from lake.errors import SilverStateError

__all__ = ["FILE_BYTES", "Tables", "to_arrow", "commit_properties", "date_predicate", "string_in_predicate"]

_COMPACT_AFTER_FILES = 32

FILE_BYTES = 4 << 20
"""Target size of the data files silver writes (and table maintenance compacts silver to). Small on
purpose: re-attributing a device's events rewrites the files holding them, and since the files of a
partition are written in event-time order, a device's session sits in one or two of them — so the
rewrite costs a few MB, not the whole day (a 10M-event week has ~90 MB days)."""


def to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """A frame as an Arrow table of exactly ``schema`` (column order, types, nullability)."""
    return frame.select(schema.names).to_arrow().cast(schema)


def commit_properties(operation: str, metadata: dict[str, Any] | None = None) -> CommitProperties:
    meta = {"growthlake.operation": operation}
    meta.update({f"growthlake.{k}": str(v) for k, v in (metadata or {}).items()})
    return CommitProperties(custom_metadata=meta)


def date_predicate(column: str, days: Iterable[date]) -> str:
    """``column IN ('YYYY-MM-DD', …)`` — built only from ``date`` objects, never from free text."""
    values = sorted(set(days))
    if not values or not all(isinstance(d, date) for d in values):
        raise ValueError(f"partition predicate needs date values, got {values!r}")
    return f"{column} IN ({', '.join(repr(d.isoformat()) for d in values)})"


def string_in_predicate(column: str, values: Iterable[str]) -> str:
    """``column IN ('…', …)`` for values read from the data (event ids are client-supplied strings):
    each is quoted as a SQL string literal, so no value can end the literal."""
    quoted = sorted({delta_io.sql_string(v) for v in values})
    if not quoted:
        raise ValueError(f"an IN predicate on {column} needs at least one value")
    return f"{column} IN ({', '.join(quoted)})"


class Tables:
    """Delta tables opened once for one build (see the module docstring)."""

    def __init__(self) -> None:
        self._open: dict[str, DeltaTable] = {}

    def table(self, uri: str) -> DeltaTable | None:
        """The table at ``uri`` (None if it does not exist yet)."""
        dt = self._open.get(uri)
        if dt is None:
            dt = delta_io.open_table(uri)
            if dt is not None:
                self._open[uri] = dt
        return dt

    def version(self, uri: str) -> int | None:
        dt = self.table(uri)
        return None if dt is None else dt.version()

    def read(self, uri: str, schema: pa.Schema, *, columns: Sequence[str] | None = None,
             filter: pads.Expression | None = None, dates: Iterable[date] | None = None,
             partition_column: str = "event_date") -> pl.DataFrame:
        """Read into polars; ``dates`` prunes ``partition_column`` partitions (``[]`` reads nothing)."""
        cols = list(columns) if columns is not None else schema.names
        projected = pa.schema([schema.field(c) for c in cols])
        dt = self.table(uri)
        days = None if dates is None else sorted(set(dates))
        if dt is None or days == []:
            return pl.from_arrow(projected.empty_table())  # type: ignore[return-value]
        parts = None if days is None else [(partition_column, "in", [d.isoformat() for d in days])]
        table = dt.to_pyarrow_dataset(partitions=parts).to_table(columns=cols, filter=filter)
        return pl.from_arrow(table.cast(projected))  # type: ignore[return-value]

    def _write(self, uri: str, data: pa.Table, *, mode: Literal["append", "overwrite"], props: CommitProperties,
               partition_by: Sequence[str] | None = None, predicate: str | None = None,
               schema_mode: Literal["merge", "overwrite"] | None = None) -> None:
        dt = self.table(uri)
        # deltalake's overloads take predicate only with a literal mode="overwrite" (its implementation takes any
        # mode); here the mode is chosen at run time, which no overload covers
        write_deltalake(dt if dt is not None else uri, data, mode=mode,  # type: ignore[arg-type, misc]
                        partition_by=list(partition_by) if partition_by else None, predicate=predicate,
                        storage_options=None if dt is not None else delta_io.storage_options(uri),
                        commit_properties=props, schema_mode=schema_mode, target_file_size=FILE_BYTES)

    def upsert(self, uri: str, data: pa.Table, *, key: str, inserts_only: bool, operation: str,
               metadata: dict[str, Any] | None = None) -> None:
        """Insert or update ``data`` by ``key``, in one commit (creating the table if missing).

        New keys only: an append. Otherwise — or once appends left more than
        ``_COMPACT_AFTER_FILES`` files — the table is rewritten with the rows replaced, which also
        compacts it (fine for the small identity table, where updates are rare: they need a link
        arriving after a later one). Not a delta-rs MERGE: in delta-rs 1.6 MERGE writes string
        columns as Arrow ``string_view``, on which pyarrow then fails to evaluate filters.
        """
        if data.num_rows == 0:
            return
        props = commit_properties(operation, metadata)
        dt = self.table(uri)
        if dt is None or (inserts_only and len(dt.file_uris()) < _COMPACT_AFTER_FILES):
            self._write(uri, data, mode="append", props=props)
            return
        current = dt.to_pyarrow_dataset().to_table().cast(data.schema)
        kept = current.filter(~pc.field(key).isin(data[key]))
        self._write(uri, pa.concat_tables([kept, data]).sort_by(key), mode="overwrite", props=props)

    def append(self, uri: str, data: pa.Table, *, partition_by: Sequence[str], operation: str,
               metadata: dict[str, Any] | None = None) -> None:
        """Append ``data`` in one commit (creating the table if missing)."""
        if data.num_rows:
            self._write(uri, data, mode="append", partition_by=partition_by,
                        props=commit_properties(operation, metadata))

    def files_per_partition(self, uri: str, column: str, *, smaller_than: int | None = None) -> dict[date, int]:
        """Number of data files (under ``smaller_than`` bytes) in each partition (from the Delta log,
        no data file opened)."""
        dt = self.table(uri)
        if dt is None:
            return {}
        actions = pa.table(dt.get_add_actions(flatten=True))
        counts: dict[date, int] = {}
        for value, size in zip(actions.column(f"partition.{column}").to_pylist(),
                               actions.column("size_bytes").to_pylist(), strict=True):
            if smaller_than is None or size < smaller_than:
                counts[value] = counts.get(value, 0) + 1
        return counts

    def replace_partitions(self, uri: str, data: pa.Table, *, column: str, days: Iterable[date], operation: str,
                           metadata: dict[str, Any] | None = None) -> None:
        """Make the partitions ``days`` of ``column`` hold exactly ``data``, in one commit.

        ``data`` may be empty (the partitions are emptied); every row must lie in ``days``.
        """
        days = sorted(set(days))
        if not days or (self.table(uri) is None and data.num_rows == 0):
            return
        predicate = date_predicate(column, days) if self.table(uri) is not None else None
        self._write(uri, data, mode="overwrite" if predicate else "append", partition_by=[column],
                    predicate=predicate, props=commit_properties(operation, metadata))

    def replace_where(self, uri: str, data: pa.Table, *, predicate: str, partition_by: Sequence[str],
                      operation: str, metadata: dict[str, Any] | None = None) -> None:
        """Delete the rows matching ``predicate`` and add ``data`` (which must match it), in one commit.
        Only the files holding matching rows are rewritten."""
        self._write(uri, data, mode="overwrite", partition_by=partition_by, predicate=predicate,
                    props=commit_properties(operation, metadata))

    def overwrite(self, uri: str, data: pa.Table, *, partition_by: Sequence[str] | None, operation: str,
                  metadata: dict[str, Any] | None = None) -> None:
        """Replace the whole table with ``data`` in one commit (its schema too: a rebuild may
        follow a schema change)."""
        self._write(uri, data, mode="overwrite", partition_by=partition_by, schema_mode="overwrite",
                    props=commit_properties(operation, metadata))

    def roll_back(self, uri: str, version: int | None) -> bool:
        """Bring a table back to ``version`` (None: to no rows) if commits were made after it.

        Returns:
            True if a commit was needed (the table had moved past ``version``).

        Raises:
            SilverStateError: the table is gone, or the files of ``version`` were vacuumed.
        """
        dt = self.table(uri)
        if dt is None:
            if version is not None:
                raise SilverStateError(uri, f"the table is missing although the last build recorded version {version}")
            return False
        props = commit_properties("silver_rollback", {"to_version": version if version is not None else "none"})
        if version is None:  # created by a build that never finished: it must hold nothing yet
            if dt.to_pyarrow_dataset().count_rows() == 0:
                return False
            dt.delete(commit_properties=props)
            return True
        if dt.version() == version:
            return False
        if dt.version() < version:
            raise SilverStateError(uri, f"the table is at version {dt.version()}, older than the recorded {version}")
        try:
            dt.restore(version, commit_properties=props)
        except Exception as exc:  # files of that version removed by VACUUM, log cleaned up, …
            raise SilverStateError(uri, f"cannot restore version {version} ({exc})") from exc
        return True

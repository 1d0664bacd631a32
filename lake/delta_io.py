"""Delta IO used by every layer: read with pushdown, append, replace a slice atomically."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, create_table_with_add_actions

from lake.settings import current as current_settings

__all__ = ["storage_options", "open_table", "read", "append", "replace_where", "sql_string", "row_count", "version",
           "StagedFiles", "stage", "publish", "discard"]


def storage_options(uri: str) -> dict[str, str] | None:
    """Object-store options from the environment (``AWS_*``); None for local paths."""
    if "://" not in uri:
        return None
    return current_settings().storage_options_for(uri)


_OPEN: dict[str, DeltaTable] = {}
_MERGE_ATTEMPTS = 5  # insert_missing: MERGEs tried before a conflict with concurrent writers is raised


def open_table(uri: str) -> DeltaTable | None:
    """The Delta table at ``uri`` at its latest version, or None when nothing was committed there.

    Tables are kept open per process and brought up to date incrementally, so an hourly run
    does not replay the whole transaction log on every read.
    """
    dt = _OPEN.get(uri)
    if dt is not None:
        try:
            dt.update_incremental()
            return dt
        except Exception:  # the table was removed or rewritten under us: open it afresh
            _OPEN.pop(uri, None)
    try:
        dt = DeltaTable(uri, storage_options=storage_options(uri))
    except TableNotFoundError:
        return None
    _OPEN[uri] = dt
    return dt


Partitions = list[tuple[str, str, Any]]


def _partition_filter(partitions: Partitions | None) -> list[tuple[str, str, Any]] | None:
    if not partitions:
        return None
    out = []
    for col, op, value in partitions:
        if isinstance(value, (list, tuple, set)):
            value = sorted(v.isoformat() if hasattr(v, "isoformat") else str(v) for v in value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out.append((col, op, value))
    return out


def read(uri: str, schema: pa.Schema, *, columns: Sequence[str] | None = None,
         filter: pads.Expression | None = None, partitions: Partitions | None = None) -> pa.Table:
    """Read a table, projected and filtered.

    ``partitions`` (e.g. ``[("event_date", "in", dates)]``) prunes files from the Delta log before
    any file is opened — cheap however many files the table has; ``filter`` then applies row
    filters with Parquet statistics pruning. A table that does not exist yet reads as empty.
    """
    dt = open_table(uri)
    cols = list(columns) if columns is not None else schema.names
    if dt is None:
        return pa.schema([schema.field(c) for c in cols]).empty_table()
    return dt.to_pyarrow_dataset(partitions=_partition_filter(partitions)).to_table(columns=cols, filter=filter)


def row_count(uri: str, *, filter: pads.Expression | None = None, partitions: Partitions | None = None) -> int:
    dt = open_table(uri)
    if dt is None:
        return 0
    return dt.to_pyarrow_dataset(partitions=_partition_filter(partitions)).count_rows(filter=filter)


def version(uri: str) -> int | None:
    dt = open_table(uri)
    return None if dt is None else dt.version()


def _commit(operation: str, metadata: dict[str, Any] | None) -> CommitProperties:
    meta = {"growthlake.operation": operation}
    meta.update({f"growthlake.{k}": str(v) for k, v in (metadata or {}).items()})
    return CommitProperties(custom_metadata=meta)


def append(uri: str, data: pa.Table, *, partition_by: Sequence[str] | None = None,
           operation: str = "append", metadata: dict[str, Any] | None = None) -> None:
    """Append ``data`` in one Delta commit (creating the table on first write)."""
    if data.num_rows == 0:
        return
    dt = open_table(uri)
    write_deltalake(dt if dt is not None else uri, data, mode="append",
                    partition_by=list(partition_by) if partition_by else None,
                    storage_options=None if dt is not None else storage_options(uri),
                    commit_properties=_commit(operation, metadata))


def overwrite(uri: str, data: pa.Table, *, operation: str = "overwrite",
              metadata: dict[str, Any] | None = None) -> None:
    """Replace the whole table with ``data`` in one commit (creating it, even empty, on first write):
    for small derived tables rewritten as a whole."""
    dt = open_table(uri)
    write_deltalake(dt if dt is not None else uri, data, mode="overwrite", schema_mode="overwrite",
                    storage_options=None if dt is not None else storage_options(uri),
                    commit_properties=_commit(operation, metadata))


def sql_string(value: str) -> str:
    """``value`` as a SQL string literal for a Delta predicate: quotes doubled, so no value, however
    it was supplied, can end the literal (delta-rs parses predicates as standard SQL)."""
    return "'" + str(value).replace("'", "''") + "'"


def replace_where(uri: str, data: pa.Table, predicate: str, *, partition_by: Sequence[str] | None = None,
                  operation: str = "replace", metadata: dict[str, Any] | None = None) -> None:
    """Atomically delete the rows matching ``predicate`` and add ``data`` (one commit).

    ``predicate`` must be built only from identifiers and values this project controls
    (validated partition keys), never from free user input.
    """
    dt = open_table(uri)
    if dt is None:
        write_deltalake(uri, data, mode="append", partition_by=list(partition_by) if partition_by else None,
                        storage_options=storage_options(uri), commit_properties=_commit(operation, metadata))
        return
    write_deltalake(dt, data, mode="overwrite", predicate=predicate,
                    partition_by=list(partition_by) if partition_by else None,
                    commit_properties=_commit(operation, metadata))


@dataclass(frozen=True)
class StagedFiles:
    """Parquet files written into a table's folder but not yet committed: invisible to readers."""

    uri: str
    actions: tuple[AddAction, ...]
    partition_by: tuple[str, ...]
    schema: pa.Schema

    @property
    def rows(self) -> int:
        return sum(json.loads(a.stats)["numRecords"] for a in self.actions)


def stage(uri: str, data: pa.Table, *, partition_by: Sequence[str]) -> StagedFiles:
    """Write ``data`` as Parquet files inside the table folder, without committing them.

    This is the "write" of write-audit-publish: the gate audits while the files are written,
    and :func:`publish` makes them visible in one commit (or :func:`discard` removes them).
    A crash in between leaves only unreferenced files, which ``VACUUM`` removes.
    """
    if "://" in uri:
        raise NotImplementedError("staged writes are implemented for local tables; use append() on object stores")
    now_ms = int(time.time() * 1000)
    actions: list[AddAction] = []
    data_cols = [c for c in data.column_names if c not in partition_by]
    groups = pc.unique(data[partition_by[0]]).to_pylist() if partition_by and data.num_rows else [None]
    for value in groups:
        part = data if value is None else data.filter(pc.equal(data[partition_by[0]], value))
        shown = value.isoformat() if hasattr(value, "isoformat") else value
        rel_dir = f"{partition_by[0]}={shown}" if value is not None else ""
        name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        rel = f"{rel_dir}/{name}" if rel_dir else name
        full = Path(uri) / rel
        full.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part.select(data_cols), full, compression="snappy")
        stats = {"numRecords": part.num_rows}
        actions.append(AddAction(
            path=rel, size=full.stat().st_size,
            partition_values={partition_by[0]: value.isoformat() if hasattr(value, "isoformat") else str(value)}
            if value is not None else {},
            modification_time=now_ms, data_change=True, stats=json.dumps(stats),
        ))
    return StagedFiles(uri, tuple(actions), tuple(partition_by), data.schema)


def publish(staged: StagedFiles, *, operation: str = "append", metadata: dict[str, Any] | None = None) -> None:
    """Commit staged files in one Delta transaction (creating the table on first write)."""
    if not staged.actions:
        return
    dt = open_table(staged.uri)
    props = _commit(operation, metadata)
    if dt is None:
        create_table_with_add_actions(staged.uri, DeltaSchema.from_arrow(staged.schema), list(staged.actions),
                                      mode="append", partition_by=list(staged.partition_by), commit_properties=props)
        return
    dt.create_write_transaction(list(staged.actions), mode="append", schema=staged.schema,
                                partition_by=list(staged.partition_by), commit_properties=props)


def discard(staged: StagedFiles) -> None:
    """Remove staged files that will never be published."""
    for a in staged.actions:
        Path(staged.uri, a.path).unlink(missing_ok=True)


def insert_missing(uri: str, data: pa.Table, *, on: Sequence[str], partition_by: Sequence[str] | None = None,
                   operation: str = "insert", metadata: dict[str, Any] | None = None) -> int:
    """Insert the rows of ``data`` whose key (``on``) is not in the table yet; return how many.

    A Delta MERGE keyed on ``on`` (include the partition column to prune the scan). A MERGE that
    inserts nothing commits nothing, so replaying the same rows leaves the version unchanged.
    Callers serialize the writers of one machine (``lake.locks.table_lock``). Across machines (an
    object-store root) delta-rs conflict-checks the MERGE: when another writer committed files to
    the partitions it read, the commit fails with ``CommitFailedError`` and the MERGE is run again
    on the new snapshot (a few times, with jittered backoff), where the other writer's keys now
    match — so a key is inserted once however many writers race, the table's creation included.
    """
    if data.num_rows == 0:
        return 0
    predicate = " AND ".join(f"t.{c} = s.{c}" for c in on)
    failed, created = 0, False
    while True:
        dt = open_table(uri)  # brought up to date: a retry sees the commit that beat it
        try:
            if dt is None and "://" not in uri:  # a local table's writers hold its lock: a plain first append
                append(uri, data, partition_by=partition_by, operation=operation, metadata=metadata)
                return data.num_rows
            if dt is None:
                # Another machine may be creating it too, and delta-rs turns a losing create into an
                # append: create it empty (no rows to double), then MERGE like every later write.
                if created:
                    raise TableNotFoundError(f"{uri}: created, but cannot be opened")
                _create_empty(uri, data.schema, partition_by)
                created = True
                continue
            metrics = (
                dt.merge(data, predicate, source_alias="s", target_alias="t",
                         commit_properties=_commit(operation, metadata))
                .when_not_matched_insert_all()
                .execute()
            )
            return int(metrics["num_target_rows_inserted"])
        except CommitFailedError:
            failed += 1
            if failed >= _MERGE_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.05, 0.2) * 2 ** failed)


def _create_empty(uri: str, schema: pa.Schema, partition_by: Sequence[str] | None) -> None:
    """An empty table at ``uri`` unless one is there (two racing creators add no rows)."""
    try:
        DeltaTable.create(uri, schema, mode="ignore", partition_by=list(partition_by) if partition_by else None,
                          storage_options=storage_options(uri))
    except DeltaError:
        if open_table(uri) is None:
            raise

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
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from lake.errors import GrowthlakeError
from lake.settings import current as current_settings

__all__ = ["storage_options", "open_table", "read", "append", "replace_where", "sql_string", "row_count", "version",
           "StagedFiles", "stage", "publish", "discard", "Snapshot", "snapshot", "publish_fenced", "ConcurrentCommit"]


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


@dataclass(frozen=True)
class Snapshot:
    """A table's version a writer decides on (None: the table did not exist): what it reads with
    ``read(..., at=)`` and what :func:`publish_fenced` checks that nobody committed after."""

    uri: str
    version: int | None


def snapshot(uri: str) -> Snapshot:
    """The table's latest version, pinned: reads and a fenced commit through it see that version."""
    dt = open_table(uri)
    return Snapshot(uri, None if dt is None else dt.version())


def _pinned(at: Snapshot) -> DeltaTable | None:
    """The table at exactly ``at.version`` (the per-process open one when it is still there)."""
    if at.version is None:
        return None
    dt = _OPEN.get(at.uri)
    if dt is not None and dt.version() == at.version:
        return dt
    return DeltaTable(at.uri, version=at.version, storage_options=storage_options(at.uri))


def read(uri: str, schema: pa.Schema, *, columns: Sequence[str] | None = None,
         filter: pads.Expression | None = None, partitions: Partitions | None = None,
         at: Snapshot | None = None) -> pa.Table:
    """Read a table, projected and filtered.

    ``partitions`` (e.g. ``[("event_date", "in", dates)]``) prunes files from the Delta log before
    any file is opened — cheap however many files the table has; ``filter`` then applies row
    filters with Parquet statistics pruning. A table that does not exist yet reads as empty.
    ``at`` reads the version a :func:`snapshot` pinned instead of the latest.
    """
    dt = _pinned(at) if at is not None else open_table(uri)
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
                  operation: str = "replace", metadata: dict[str, Any] | None = None,
                  create_empty: bool = False) -> None:
    """Atomically delete the rows matching ``predicate`` and add ``data`` (one commit).

    ``predicate`` must be built only from identifiers and values this project controls
    (validated partition keys), never from free user input.

    A missing table is created by appending ``data``: a blind append, so two writers creating it
    at once both keep their rows. With ``create_empty`` it is created empty first (a racing creator
    loses version 0 and reopens it) and ``data`` goes in by the conflict-checked replace, so racing
    writers on several machines conflict instead.
    """
    dt = open_table(uri)
    if dt is None and create_empty:
        try:
            write_deltalake(uri, data.schema.empty_table(), mode="append",
                            partition_by=list(partition_by) if partition_by else None,
                            storage_options=storage_options(uri), commit_properties=_commit("create", None))
        except DeltaError:  # another writer created it first
            pass
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


def _table_fs(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of a table folder and the folder's path in it (local or object store)."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), uri
    return pafs.FileSystem.from_uri(uri)


def _write_file(uri: str, rel: str, data: pa.Table) -> int:
    """Write ``data`` as the Parquet file ``rel`` of the table folder ``uri``; its size in bytes."""
    fs, base = _table_fs(uri)
    full = f"{base}/{rel}"
    if isinstance(fs, pafs.LocalFileSystem):
        Path(full).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, full, filesystem=fs, compression="snappy")
    return int(fs.get_file_info(full).size)


def stage(uri: str, data: pa.Table, *, partition_by: Sequence[str]) -> StagedFiles:
    """Write ``data`` as Parquet files inside the table folder, without committing them.

    This is the "write" of write-audit-publish: the gate audits while the files are written,
    and :func:`publish` makes them visible in one commit (or :func:`discard` removes them).
    A crash in between leaves only unreferenced files, which ``VACUUM`` removes. Local folders
    and object stores alike.
    """
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
        size = _write_file(uri, rel, part.select(data_cols))
        stats = {"numRecords": part.num_rows}
        actions.append(AddAction(
            path=rel, size=size,
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
    _delete_files(staged.uri, [a.path for a in staged.actions])


def _delete_files(uri: str, rels: Sequence[str]) -> None:
    fs, base = _table_fs(uri)
    for rel in rels:
        try:
            fs.delete_file(f"{base}/{rel}")
        except FileNotFoundError:
            pass


# --- Fenced commits: an append that fails when another writer committed since its snapshot ----------
#
# delta-rs never conflict-checks a blind append: two writers that classified the same rows against
# the same version both commit them. It does check that two commits do not remove the same file
# ("a concurrent transaction deleted data this operation read"). So every fenced commit removes the
# table's fence file(s) — Parquet files without a row, in a partition no row has (null, or the epoch
# for a non-nullable date column), invisible to every reader — and adds a new one with its data: of
# two fenced commits decided on overlapping snapshots the second fails, whatever machine made it,
# and its writer decides again on the new version. A table holds at least one fence from its first
# fenced commit on (the fence is replaced, never only removed), so every later snapshot has one.

_FENCE = "fence-"
_FENCE_ATTEMPTS = 8  # fenced passes a writer re-runs after conflicts before it gives up


class ConcurrentCommit(GrowthlakeError):
    """Another writer committed to a table after the version this commit was decided on."""

    def __init__(self, uri: str, read_version: int | None) -> None:
        self.uri, self.read_version = uri, read_version
        super().__init__(
            f"{uri}: another writer committed after version {read_version}, which this commit was decided on. "
            "Nothing was committed: read the table again and decide again (ingestion does so by itself, "
            f"{_FENCE_ATTEMPTS} times; if it keeps losing, too many machines write the same hours at once)."
        )


def _is_fence(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith(_FENCE)


def _fences(dt: DeltaTable) -> list[tuple[str, int]]:
    """``(path, size)`` of the fence files of the table's snapshot."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    return [(p, s) for p, s in zip(actions["path"].to_pylist(), actions["size_bytes"].to_pylist(), strict=True)
            if _is_fence(p)]


def _fence_partition(schema: pa.Schema, partition_by: Sequence[str]) -> dict[str, str | None]:
    """Where fences live: a partition no row has — null, or for a non-nullable date column the epoch
    (bronze's event and landing dates are contract-checked to lie near their landing hour)."""
    values: dict[str, str | None] = {}
    for col in partition_by:
        field = schema.field(col)
        if field.nullable:
            values[col] = None
        elif pa.types.is_date(field.type):
            values[col] = "1970-01-01"
        else:
            raise ValueError(f"fenced commits need a nullable or date partition column, not {col}: {field.type}")
    return values


def _new_fence(uri: str, schema: pa.Schema, partition_by: Sequence[str]) -> AddAction:
    """Write a fence file (no row) into the fence partition; its add action."""
    where = _fence_partition(schema, partition_by)
    rel = "/".join(f"{c}={'__HIVE_DEFAULT_PARTITION__' if v is None else v}" for c, v in where.items())
    rel = f"{rel}/{_FENCE}{uuid.uuid4()}.parquet" if rel else f"{_FENCE}{uuid.uuid4()}.parquet"
    data_schema = pa.schema([f for f in schema if f.name not in partition_by])
    size = _write_file(uri, rel, data_schema.empty_table())
    return AddAction(path=rel, size=size, partition_values=where, modification_time=int(time.time() * 1000),
                     data_change=True, stats=json.dumps({"numRecords": 0}))


def _fenced_table(at: Snapshot, schema: pa.Schema, partition_by: Sequence[str]) -> DeltaTable:
    """The table at ``at`` when it has a fence. A missing table is created holding only a fence
    (racing creators add a fence each, harmless) and used if nobody added data meanwhile; an
    unfenced one (a lake written before fences) gets one, and the caller decides again."""
    dt = _pinned(at)
    if dt is not None and _fences(dt):
        return dt
    fence = _new_fence(at.uri, schema, partition_by)
    props = _commit("fence", None)
    if dt is None:
        try:
            create_table_with_add_actions(at.uri, DeltaSchema.from_arrow(schema), [fence], mode="append",
                                          partition_by=list(partition_by) or None, commit_properties=props,
                                          storage_options=storage_options(at.uri))
        except DeltaError:  # another writer created it first
            _delete_files(at.uri, [fence.path])
        created = DeltaTable(at.uri, storage_options=storage_options(at.uri))
        paths = created.file_uris()
        if _fences(created) and all(_is_fence(p) for p in paths):
            return created
    else:
        dt.create_write_transaction([fence], mode="append", schema=schema, partition_by=list(partition_by),
                                    commit_properties=props)
    raise ConcurrentCommit(at.uri, at.version)


def publish_fenced(at: Snapshot, staged: StagedFiles, *, operation: str = "append",
                   metadata: dict[str, Any] | None = None) -> None:
    """Commit staged files in one transaction that fails if another writer committed a fenced
    commit to the table after ``at`` (the version the rows were decided on), on any machine.

    Raises:
        ConcurrentCommit: nothing was committed and the staged files are removed. Decide again on a
            new :func:`snapshot` and stage again.
    """
    if not staged.actions:
        return
    partition_by = list(staged.partition_by)
    dt = _fenced_table(at, staged.schema, partition_by)
    now = int(time.time() * 1000)
    where = _fence_partition(staged.schema, partition_by)
    removes = [RemoveAction(path=p, data_change=True, deletion_timestamp=now, size=size, partition_values=where)
               for p, size in _fences(dt)]
    fence = _new_fence(at.uri, staged.schema, partition_by)
    try:
        dt.create_write_transaction([*staged.actions, *removes, fence], mode="append", schema=staged.schema,
                                    partition_by=partition_by, commit_properties=_commit(operation, metadata))
    except CommitFailedError as exc:
        _delete_files(at.uri, [fence.path, *(a.path for a in staged.actions)])
        raise ConcurrentCommit(at.uri, at.version) from exc


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

"""Every Delta table under ``$ROOT/delta``: find the person's rows, remove them, purge the history.

Tables are discovered, not listed: every folder holding a ``_delta_log`` is erased, so a table
added later is covered without touching this module. Per row:

* **deleted** when an identity column (``user_id``, ``anonymous_id``, ``person_id``) holds one of
  the person's ids, an ``event_id`` column one of their events, or a raw-record column
  (``raw_line``: a quarantined landed line) mentions an id;
* **redacted** — kept, with each mention of an id replaced by ``"erased"`` — when only free text
  mentions the person (e.g. a JSON document of a loop run listing unit ids), and for every
  matching row of the tables in :data:`REDACT_TABLES`.

The audit log (``decisions/audit_log``) is append-only by rule: decisions stay accountable. The
right to erasure is the one legal exception, and it is applied as a redaction **in place**: the
person's decision rows are kept (loop, policy version, propensity, verdict, approval, time) with
``person_id`` replaced by ``"erased"``; ``decision_id`` (a hash of loop, day, kind and the id) is
kept as the row's key.

A column whose name looks like a person key (``customer_id``, ``member_key``, …) but is not
declared here stops the erasure before anything is changed (:class:`UnknownPersonColumn`).

Affected partitions are rewritten in one commit per table (the predicate names only partition
values read from the table, never the ids). Then the table's **history is purged** when it held
the person — in its current rows, in files an earlier version referenced (a silver partition
overwritten last week still has its old Parquet files on disk), or in its log (commit files carry
column statistics: the min/max of ``user_id`` can be the person's id): the log and file retention
are set to zero for the purge, files no version references are vacuumed, a checkpoint is written
and older log entries are cleaned up; then the retention properties are set back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake

from lake import delta_io
from lake.erasure.errors import UnknownPersonColumn
from lake.erasure.subject import Subject
from lake.paths import LakePaths

__all__ = [
    "EVENT_COLUMNS",
    "IDENTITY_COLUMNS",
    "NOT_PERSON_COLUMNS",
    "RECORD_COLUMNS",
    "REDACTED",
    "REDACT_TABLES",
    "TableErasure",
    "check_columns",
    "discover_tables",
    "erase_table",
    "history_mentions",
    "purge_history",
]

IDENTITY_COLUMNS = frozenset({"user_id", "anonymous_id", "person_id"})
EVENT_COLUMNS = frozenset({"event_id"})
RECORD_COLUMNS = frozenset({"raw_line"})
# Columns whose names look like person keys but hold something else.
NOT_PERSON_COLUMNS = frozenset(
    {
        "link_event_id",
        "client_session_id",
        "session_id",
        "decision_id",
        "message_id",
        "request_id",
        "erasure_id",
        "subject_hash",
    }
)
REDACT_TABLES = frozenset({"decisions/audit_log"})
REDACTED = "erased"
_PERSON_KEY = re.compile(
    r"(^|_)(user|person|people|anonymous|anon|customer|member|visitor|account|subject|entity|client|device|profile)"
    r"s?_?(id|ids|key|keys)$|(^|_)emails?$"
)
_LOG_RETENTION = "delta.logRetentionDuration"
_FILE_RETENTION = "delta.deletedFileRetentionDuration"
_DEFAULTS = {_LOG_RETENTION: "interval 30 days", _FILE_RETENTION: "interval 1 weeks"}


@dataclass
class TableErasure:
    """What erasing one table did."""

    table: str  # relative to $ROOT/delta, e.g. silver/events
    rows_removed: int = 0
    rows_redacted: int = 0
    history_purged: bool = False


def discover_tables(paths: LakePaths) -> list[str]:
    """Relative paths (``layer/table``, ``loops/<loop>/decisions``) of every Delta table, sorted."""
    base = Path(paths.root, "delta")
    found = []
    for folder, dirs, _ in os.walk(base):
        if "_delta_log" in dirs:
            found.append(Path(folder).relative_to(base).as_posix())
            dirs[:] = []  # a table's partition folders hold no tables
        else:
            dirs.sort()
    return sorted(found)


def _is_text(t: pa.DataType) -> bool:
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or (pa.types.is_dictionary(t) and _is_text(t.value_type))
    )


def _is_text_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_text(t.value_type)


def check_columns(table: str, schema: pa.Schema) -> None:
    """Refuse a table with a text column named like a person key that is not declared above."""
    for f in schema:
        name = f.name.lower()
        if (
            (_is_text(f.type) or _is_text_list(f.type))
            and name not in IDENTITY_COLUMNS | EVENT_COLUMNS | RECORD_COLUMNS | NOT_PERSON_COLUMNS
            and _PERSON_KEY.search(name)
        ):
            raise UnknownPersonColumn(table, f.name)


def _text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return col if pa.types.is_string(col.type) else col.cast(pa.string())


def _false(n: int) -> pa.Array:
    return pa.array([False] * n, pa.bool_()) if n else pa.array([], pa.bool_())


def _mentions(col: pa.ChunkedArray, needles: Iterable[str]) -> pa.ChunkedArray | pa.Array:
    out: Any = _false(len(col))
    for n in needles:
        out = pc.or_(out, pc.fill_null(pc.match_substring(col, pattern=n), False))
    return out


def _masks(data: pa.Table, subject: Subject) -> tuple[Any, Any]:
    """(rows that are the person's, rows that only mention them) of ``data``."""
    exact = pa.array(sorted(subject.exact), pa.string())
    events = pa.array(sorted(subject.event_ids), pa.string())
    own: Any = _false(data.num_rows)
    mention: Any = _false(data.num_rows)
    for name in data.column_names:
        col = data[name]
        lname = name.lower()
        if _is_text(col.type):
            col = _text(col)
            if lname in IDENTITY_COLUMNS:
                own = pc.or_(own, pc.fill_null(pc.is_in(col, value_set=exact), False))
            elif lname in EVENT_COLUMNS:
                own = pc.or_(own, pc.fill_null(pc.is_in(col, value_set=events), False))
            elif lname in RECORD_COLUMNS:
                own = pc.or_(own, _mentions(col, subject.needles))
            else:
                mention = pc.or_(mention, _mentions(col, subject.needles))
        elif _is_text_list(col.type):
            # A list element that mentions the person makes the row theirs (lists cannot be redacted
            # element by element without changing what the list means).
            arr = col.combine_chunks()
            flat = pc.list_flatten(arr)
            if len(flat):
                hit = _mentions(_text(pa.chunked_array([flat])), subject.needles)
                rows = pc.unique(pc.filter(pc.list_parent_indices(arr), hit))
                own = pc.or_(own, pc.is_in(pa.array(range(data.num_rows), pa.int64()), value_set=rows.cast(pa.int64())))
    return own, mention


def _redact(data: pa.Table, rows: Any, subject: Subject) -> pa.Table:
    """Replace the person's ids by ``REDACTED`` in the text columns of ``rows`` (other rows untouched)."""
    exact = pa.array(sorted(subject.exact), pa.string())
    cols = []
    for name in data.column_names:
        col = data[name]
        if _is_text(col.type):
            text = _text(col)
            if name.lower() in IDENTITY_COLUMNS | EVENT_COLUMNS:
                hit = pc.fill_null(pc.is_in(text, value_set=exact), False)
                new = pc.if_else(hit, pa.scalar(REDACTED, pa.string()), text)
            else:
                new = text
                for n in subject.needles:
                    new = pc.replace_substring(new, pattern=n, replacement=REDACTED)
            col = pc.if_else(rows, new, text).cast(col.type) if col.type != pa.string() else pc.if_else(rows, new, text)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=data.schema)


def _literal(value: Any) -> str:
    """A SQL literal for a partition value read from the table (never user input)."""
    if value is None:
        raise ValueError("null partition values are not supported by the erasure rewrite")
    if isinstance(value, (date, datetime)):
        return repr(value.isoformat())
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return delta_io.sql_string(str(value))


def _partition_predicate(parts: list[str], values: list[tuple]) -> str:
    clauses = [" AND ".join(f"{c} = {_literal(v)}" for c, v in zip(parts, tup)) for tup in values]
    return " OR ".join(f"({c})" for c in clauses)


def erase_table(paths: LakePaths, table: str, subject: Subject, *, erasure_id: str) -> TableErasure:
    """Delete (or redact) the person's rows of one table, then purge its history if it held them."""
    uri = f"{paths.root}/delta/{table}"
    result = TableErasure(table)
    dt = DeltaTable(uri, storage_options=delta_io.storage_options(uri))
    schema = pa.schema(dt.schema().to_arrow())
    check_columns(table, schema)
    parts = list(dt.metadata().partition_columns)
    scan = [f.name for f in schema if _is_text(f.type) or _is_text_list(f.type) or f.name in parts]
    if [c for c in scan if c not in parts]:
        data = dt.to_pyarrow_dataset().to_table(columns=scan)
        own, mention = _masks(data, subject)
        hit = pc.or_(own, mention)
        if pc.any(hit).as_py():
            result = _rewrite(dt, table, schema, parts, data.filter(hit), subject, erasure_id=erasure_id)
    if result.rows_removed or result.rows_redacted or history_mentions(uri, dt, subject):
        purge_history(uri)
        result.history_purged = True
    return result


def _rewrite(
    dt: DeltaTable,
    table: str,
    schema: pa.Schema,
    parts: list[str],
    hits: pa.Table,
    subject: Subject,
    *,
    erasure_id: str,
) -> TableErasure:
    result = TableErasure(table)
    dataset = dt.to_pyarrow_dataset()
    if parts:
        keys = sorted({tuple(r[c] for c in parts) for r in hits.select(parts).to_pylist()}, key=repr)
        flt = None
        for tup in keys:
            clause = None
            for c, v in zip(parts, tup):
                term = pc.field(c) == pa.scalar(v, schema.field(c).type)
                clause = term if clause is None else clause & term
            flt = clause if flt is None else flt | clause
        full = dataset.to_table(filter=flt)
        predicate = _partition_predicate(parts, keys)
    else:
        full, predicate = dataset.to_table(), None
    full = full.select(schema.names)
    own, mention = _masks(full, subject)
    if table in REDACT_TABLES:
        redact, delete = pc.or_(own, mention), _false(full.num_rows)
    else:
        redact, delete = pc.and_(mention, pc.invert(own)), own
    result.rows_removed = int(pc.sum(pc.cast(delete, pa.int64())).as_py() or 0)
    result.rows_redacted = int(pc.sum(pc.cast(redact, pa.int64())).as_py() or 0)
    out = full.filter(pc.invert(delete))
    if result.rows_redacted:
        out = _redact(out, pc.filter(redact, pc.invert(delete)), subject)
    props = CommitProperties(custom_metadata={"growthlake.operation": "erasure", "growthlake.erasure_id": erasure_id})
    write_deltalake(
        dt, out.cast(schema), mode="overwrite", predicate=predicate, partition_by=parts or None, commit_properties=props
    )
    return result


def history_mentions(uri: str, dt: DeltaTable, subject: Subject) -> bool:
    """Whether files the current version does not reference, or the log, hold one of the ids."""
    if "://" in uri:
        return True  # not inspected on object stores: purge to be safe
    base = Path(uri)
    current = {unquote(p) for p in pa.table(dt.get_add_actions(flatten=True)).column("path").to_pylist()}
    needles = [n.encode() for n in subject.needles]
    for path in base.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(base).as_posix()
        in_log = rel.startswith("_delta_log/")
        if not in_log and rel in current:
            continue
        data = path.read_bytes()
        if any(n in data for n in needles):
            return True
        if path.suffix == ".parquet" and _parquet_mentions(path, subject):
            return True
    return False


def _parquet_mentions(path: Path, subject: Subject) -> bool:
    try:
        text = json.dumps(pq.read_table(path).to_pylist(), default=str)
    except Exception:  # noqa: BLE001 - an unreadable leftover is purged rather than trusted
        return True
    return any(n in text for n in subject.needles)


def purge_history(uri: str) -> None:
    """Drop every trace of earlier versions: unreferenced files and log entries before a new checkpoint.

    ``VACUUM`` with zero retention removes the data files no version references any more; a
    checkpoint at the current version, then ``cleanup_metadata`` with ``delta.logRetentionDuration``
    at zero, removes the commit files before it (their ``add`` actions carry column statistics,
    their ``commitInfo`` operation parameters). The retention properties are set back afterwards
    (to their previous values, or to the Delta defaults), so later checkpoints keep history again.
    Time travel to versions before the purge is no longer possible — by design.
    """
    dt = DeltaTable(uri, storage_options=delta_io.storage_options(uri))
    config = dict(dt.metadata().configuration)
    dt.alter.set_table_properties({_LOG_RETENTION: "interval 0 seconds", _FILE_RETENTION: "interval 0 seconds"})
    dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False, full=True)
    dt.create_checkpoint()
    dt.cleanup_metadata()
    dt.alter.set_table_properties({k: config.get(k) or _DEFAULTS[k] for k in (_LOG_RETENTION, _FILE_RETENTION)})
    _forget(uri)


def _forget(uri: str) -> None:
    # delta_io keeps tables open per process and refreshes them incrementally from the log; after a
    # purge the commits between a cached version and the checkpoint are gone, so reopen it afresh.
    delta_io._OPEN.pop(uri, None)

"""Every Delta table under ``$ROOT/delta``: find the person's rows, remove them, purge the history.

Tables are discovered, not listed: every folder holding a ``_delta_log`` is erased, so a table
added later is covered without touching this module. Per row (:func:`owned_rows`):

* **deleted** when it is the person's, by the most specific id it carries — ``user_id`` when set
  (so another user's event on a device they shared is never theirs), else ``person_id`` (silver's
  attribution), else ``anonymous_id`` (a device attributed to them, see ``lake.erasure.subject``),
  else the id fields parsed from a quarantined ``raw_line``; a row without any id is theirs when
  its ``event_id`` is one of theirs. Ids are compared whole: ``user-1`` is not ``user-10``;
* **redacted** — kept, with each mention replaced by ``"erased"`` — when another text column
  mentions them: one of their ids, their email or phone (raw or keyed hash) as a *whole token*
  (``user-1`` inside ``user-10`` or ``evt-user-1x`` is not a mention). Identity columns of rows that
  are not theirs are never changed. Every matching row of the tables in :data:`REDACT_TABLES` is
  redacted instead of deleted.

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
from lake.erasure.lines import parse_record
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
    "owned_rows",
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
    """Relative paths (``layer/table``, ``loops/<loop>/decisions``) of every Delta table, sorted.

    On an object store, the tables are the prefixes holding a ``_delta_log/`` (one recursive listing).
    """
    if not paths.is_local:
        import pyarrow.fs as pafs

        fs, base_key = pafs.FileSystem.from_uri(f"{paths.root}/delta")
        tables = set()
        for info in fs.get_file_info(pafs.FileSelector(base_key, recursive=True, allow_not_found=True)):
            rel = info.path[len(base_key) + 1:]
            if "/_delta_log/" in f"/{rel}":
                tables.add(f"/{rel}".split("/_delta_log/", 1)[0].lstrip("/"))
        return sorted(t for t in tables if t)
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


def _is_in(col: pa.ChunkedArray, values: Iterable[str]) -> Any:
    return pc.fill_null(pc.is_in(col, value_set=pa.array(sorted(values), pa.string())), False)


def _containing(col: pa.ChunkedArray, needles: Iterable[str]) -> Any:
    """Rows whose text contains one of ``needles`` as a substring (a cheap prefilter, never a verdict)."""
    out: Any = _false(len(col))
    for n in needles:
        out = pc.or_(out, pc.fill_null(pc.match_substring(col, pattern=n), False))
    return out


def _flat(mask: Any) -> pa.Array:
    return mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask


def _rows_where(n: int, rows: Iterable[int]) -> pa.Array:
    hit = [False] * n
    for i in rows:
        hit[i] = True
    return pa.array(hit, pa.bool_())


def _mentions(col: pa.ChunkedArray, subject: Subject) -> Any:
    """Rows whose text mentions the subject: one of their tokens as a whole token, not a substring."""
    if not subject.tokens or len(col) == 0:
        return _false(len(col))
    candidates = pc.indices_nonzero(_containing(col, subject.tokens)).to_pylist()
    if not candidates:
        return _false(len(col))
    values = pc.take(col, pa.array(candidates, pa.int64())).to_pylist()
    return _rows_where(len(col), (i for i, v in zip(candidates, values, strict=True) if subject.mentioned_in(v)))


def owned_rows(data: pa.Table, subject: Subject) -> Any:
    """Rows that are the subject's, decided by the most specific id each row carries.

    ``user_id`` when it is set (another user's row is never theirs, whatever device it came from);
    else ``person_id`` (silver's attribution: their user id or ``anon:<their device>``); else
    ``anonymous_id`` (one of the devices attributed to them); else, for a quarantined ``raw_line``,
    the id fields parsed from the line by the same rule; a row with no id at all is theirs when its
    ``event_id`` is one of theirs.
    """
    n = data.num_rows
    cols = {name.lower(): data[name] for name in data.column_names if _is_text(data[name].type)}
    own: Any = _false(n)
    decided: Any = _false(n)
    for name, values in (
        ("user_id", subject.user_ids),
        ("person_id", subject.persons),
        ("anonymous_id", subject.anonymous_ids),
    ):
        if name in cols:
            col = _text(cols[name])
            present = pc.and_(pc.is_valid(col), pc.invert(decided))
            own = pc.or_(own, pc.and_(present, _is_in(col, values)))
            decided = pc.or_(decided, present)
    for name in sorted(RECORD_COLUMNS & set(cols)):
        col = _text(cols[name])
        maybe = pc.and_(pc.invert(decided), _containing(col, sorted(subject.exact)))
        if "event_id" in cols:
            maybe = pc.or_(maybe, pc.and_(pc.invert(decided), _is_in(_text(cols["event_id"]), subject.event_ids)))
        rows = pc.indices_nonzero(maybe).to_pylist()
        mine, parsed = [], []
        for i, text in zip(rows, pc.take(col, pa.array(rows, pa.int64())).to_pylist(), strict=True):
            ids = parse_record(text) if text is not None else None
            if ids is not None and ids.has_ids:
                parsed.append(i)
                if subject.owns(ids):
                    mine.append(i)
        own = pc.or_(own, _rows_where(n, mine))
        decided = pc.or_(decided, _rows_where(n, parsed))
    if "event_id" in cols and subject.event_ids:
        own = pc.or_(own, pc.and_(pc.invert(decided), _is_in(_text(cols["event_id"]), subject.event_ids)))
    return own


def _masks(data: pa.Table, subject: Subject) -> tuple[Any, Any]:
    """(rows that are the person's, rows that mention them) of ``data``."""
    own = owned_rows(data, subject)
    mention: Any = _false(data.num_rows)
    for name in data.column_names:
        col = data[name]
        lname = name.lower()
        if _is_text(col.type):
            if lname not in IDENTITY_COLUMNS | EVENT_COLUMNS:
                mention = pc.or_(mention, _mentions(_text(col), subject))
        elif _is_text_list(col.type):
            # A list element that mentions the person makes the row theirs (lists cannot be redacted
            # element by element without changing what the list means).
            arr = col.combine_chunks()
            flat = pc.list_flatten(arr)
            if len(flat):
                hit = _mentions(_text(pa.chunked_array([flat])), subject)
                rows = pc.unique(pc.filter(pc.list_parent_indices(arr), hit))
                own = pc.or_(own, pc.is_in(pa.array(range(data.num_rows), pa.int64()), value_set=rows.cast(pa.int64())))
    return own, mention


def _redact(data: pa.Table, rows: Any, subject: Subject, *, identities: Any = None) -> pa.Table:
    """Replace the person's mentions by ``REDACTED`` in the text columns of ``rows``; in the rows of
    ``identities`` (their own rows kept by rule: the audit log) their identity values too. Other rows,
    and the identity columns of rows that are not theirs, stay as they are."""
    rows = _flat(pc.fill_null(rows, False))
    identities = None if identities is None else _flat(pc.fill_null(identities, False))
    where = pc.indices_nonzero(rows)
    cols = []
    for name in data.column_names:
        col = data[name]
        if _is_text(col.type):
            text = _text(col).combine_chunks()
            if name.lower() in IDENTITY_COLUMNS | EVENT_COLUMNS:
                if identities is None:
                    cols.append(col)
                    continue
                hit = pc.and_(identities, _is_in(text, subject.exact))
                new = pc.if_else(hit, pa.scalar(REDACTED, pa.string()), text)
            else:
                values = pc.take(text, where).to_pylist()
                replaced = pa.array([None if v is None else subject.redact(v, REDACTED) for v in values], pa.string())
                new = pc.replace_with_mask(text, rows, replaced) if len(values) else text
            col = new.cast(col.type) if col.type != pa.string() else new
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
    clauses = [" AND ".join(f"{c} = {_literal(v)}" for c, v in zip(parts, tup, strict=True)) for tup in values]
    return " OR ".join(f"({c})" for c in clauses)


def erase_table(
    paths: LakePaths, table: str, subject: Subject, *, erasure_id: str, replacements: pa.Table | None = None
) -> TableErasure:
    """Delete (or redact) the person's rows of one table, then purge its history if it held them.

    Args:
        paths: the lake.
        table: relative to ``$ROOT/delta`` (``silver/events``).
        subject: whose rows.
        erasure_id: recorded in the commit's metadata.
        replacements: rows written in the same commit, when the table held the person (the identity
            rows that replace theirs for shared devices; an unpartitioned table only).
    """
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
            result = _rewrite(
                dt, table, schema, parts, data.filter(hit), subject, erasure_id=erasure_id, replacements=replacements
            )
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
    replacements: pa.Table | None,
) -> TableErasure:
    result = TableErasure(table)
    dataset = dt.to_pyarrow_dataset()
    if parts:
        if replacements is not None and replacements.num_rows:
            raise ValueError(f"replacement rows for the partitioned table {table} are not supported")
        keys = sorted({tuple(r[c] for c in parts) for r in hits.select(parts).to_pylist()}, key=repr)
        flt = None
        for tup in keys:
            clause = None
            for c, v in zip(parts, tup, strict=True):
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
    keep = pc.invert(delete)
    out = full.filter(keep)
    if result.rows_redacted:
        identities = pc.filter(own, keep) if table in REDACT_TABLES else None
        out = _redact(out, pc.filter(redact, keep), subject, identities=identities)
    if result.rows_removed and replacements is not None and replacements.num_rows:
        out = pa.concat_tables([out.cast(schema), replacements.select(schema.names).cast(schema)])
    props = CommitProperties(custom_metadata={"growthlake.operation": "erasure", "growthlake.erasure_id": erasure_id})
    write_deltalake(
        dt, out.cast(schema), mode="overwrite", predicate=predicate, partition_by=parts or None, commit_properties=props
    )
    return result


def history_mentions(uri: str, dt: DeltaTable, subject: Subject) -> bool:
    """Whether files the current version does not reference, or the log, hold the person: a row of
    theirs or a mention (Parquet values), or one of their tokens (log entries: column statistics)."""
    if "://" in uri:
        return True  # not inspected on object stores: purge to be safe
    pattern = subject.byte_pattern
    if pattern is None and not subject.exact:
        return False
    base = Path(uri)
    current = {unquote(p) for p in pa.table(dt.get_add_actions(flatten=True)).column("path").to_pylist()}
    for path in base.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(base).as_posix()
        in_log = rel.startswith("_delta_log/")
        if not in_log and rel in current:
            continue
        if path.suffix == ".parquet":
            if _parquet_holds(path, subject):
                return True
        elif pattern is not None and pattern.search(path.read_bytes()):
            return True
    return False


def _parquet_holds(path: Path, subject: Subject) -> bool:
    try:
        data = pq.read_table(path)
    except Exception:  # noqa: BLE001 - an unreadable leftover is purged rather than trusted
        return True
    own, mention = _masks(data, subject)
    if pc.any(pc.or_(own, mention)).as_py():
        return True
    # A checkpoint holds column statistics as values, not as columns named like the person's.
    return subject.pattern is not None and subject.mentioned_in(json.dumps(data.to_pylist(), default=str))


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

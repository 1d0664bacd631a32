"""Everything outside the Delta tables and the landing zone: loose files, the warehouse, the online store.

* **Parquet files** anywhere else under the root — batches a gate held (``audit/held/``), the
  simulator's truth and state (``simulator/``) — are rewritten without the rows that carry one of
  the person's ids in any text (or list-of-text) column.
* **JSON files** (the GrowthBook flags documents under ``actuation/``, simulator summaries): unit
  ids in lists are dropped, other mentions replaced by ``"erased"``.
* **The warehouse** (``warehouse.duckdb``): in a private copy taken under the warehouse writer
  lock (:func:`lake.warehouse.staged_warehouse`), rows with a text column mentioning an id are
  deleted from every base table; the copy is then re-created as a fresh file (``COPY FROM
  DATABASE``), because DuckDB frees deleted rows' blocks without overwriting them, and swapped in
  atomically like a dbt build.
* **The online feature store** (SQLite): rows whose text mentions an id are deleted from every
  table with ``secure_delete`` on, the write-ahead log is checkpointed and truncated, then
  ``VACUUM`` rewrites the file.

:func:`leftover_files` then reads every file outside ``delta/`` once more, raw bytes and
decompressed gzip, and names those still holding an id.
"""

from __future__ import annotations

import gzip
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.erasure.delta_tables import REDACTED, _masks
from lake.erasure.subject import Subject
from lake.paths import LakePaths

__all__ = ["erase_online_store", "erase_warehouse", "leftover_files", "scrub_loose_files"]

_SKIP_TOP = ("delta", "landing", "_locks")  # Delta tables and landing have their own erasure


def _walk(paths: LakePaths):
    root = Path(paths.root)
    if not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root).parts
        if not rel:
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_TOP)
        for name in sorted(files):
            yield Path(folder, name)


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.erasing-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _scrub_parquet(path: Path, subject: Subject) -> int:
    meta = pq.read_metadata(path)
    table = pq.read_table(path)
    if table.num_rows == 0:
        return 0
    own, mention = _masks(table, subject)
    hit = pc.or_(own, mention)
    removed = int(pc.sum(pc.cast(hit, pa.int64())).as_py() or 0)
    if removed:
        codec = (
            meta.row_group(0).column(0).compression.lower() if meta.num_row_groups and meta.num_columns else "snappy"
        )
        kept = table.filter(pc.invert(hit))
        _atomic(path, lambda tmp: pq.write_table(kept, tmp, compression=codec if codec != "uncompressed" else "none"))
    return removed


def _scrub_json(value: Any, subject: Subject) -> Any:
    exact = subject.exact
    if isinstance(value, dict):
        return {
            k: _scrub_json(v, subject)
            for k, v in value.items()
            if not (isinstance(k, str) and (k in exact or any(n in k for n in subject.needles)))
        }
    if isinstance(value, list):
        return [_scrub_json(v, subject) for v in value if not (isinstance(v, str) and v in exact)]
    if isinstance(value, str):
        for n in subject.needles:
            value = value.replace(n, REDACTED)
    return value


def scrub_loose_files(paths: LakePaths, subject: Subject) -> dict[str, int]:
    """Rewrite the Parquet and JSON files outside ``delta/`` and ``landing/`` that hold the person.

    Returns:
        Rows removed (Parquet) or mentions scrubbed (JSON, counted as 1) per file, relative to the root.
    """
    if not subject.needles:
        return {}
    needles = [n.encode() for n in subject.needles]
    out: dict[str, int] = {}
    for path in _walk(paths):
        rel = path.relative_to(paths.root).as_posix()
        if path.name.startswith(".") and ".erasing-" in path.name:
            continue
        if path.suffix == ".parquet":
            n = _scrub_parquet(path, subject)
            if n:
                out[rel] = n
        elif path.suffix == ".json":
            raw = path.read_bytes()
            if not any(n in raw for n in needles):
                continue
            doc = orjson.loads(raw)
            option = orjson.OPT_INDENT_2 if b"\n" in raw.strip() else 0
            new = orjson.dumps(_scrub_json(doc, subject), option=option | orjson.OPT_SORT_KEYS)
            data = new + (b"\n" if raw.endswith(b"\n") else b"")
            _atomic(path, lambda tmp, data=data: tmp.write_bytes(data))
            out[rel] = 1
    return out


# -- warehouse ---------------------------------------------------------------------------------------


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _person_counts(con, subject: Subject) -> list[tuple[str, str, int, str, list[str]]]:
    """(schema, table, rows, condition, parameters) of every base table with rows mentioning an id."""
    out = []
    tables = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_catalog = current_database() ORDER BY 1, 2"
    ).fetchall()
    for schema, table in tables:
        cols = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? AND table_catalog = current_database()",
            [schema, table],
        ).fetchall()
        text = [c for c, t in cols if "VARCHAR" in t.upper() or "[]" in t or t.upper().startswith(("STRUCT", "MAP"))]
        if not text:
            continue
        # Identifiers come from DuckDB's own catalog; the ids are bound as parameters.
        cond = " OR ".join(f"contains(CAST({_quote(c)} AS VARCHAR), ?)" for c in text for _ in subject.needles)
        params = [n for _ in text for n in subject.needles]
        (count,) = con.execute(f"SELECT count(*) FROM {_quote(schema)}.{_quote(table)} WHERE {cond}", params).fetchone()
        if count:
            out.append((schema, table, int(count), cond, params))
    return out


def erase_warehouse(paths: LakePaths, subject: Subject) -> dict[str, int]:
    """Delete the person's rows from every base table of the warehouse and rebuild the file.

    Looks first, read-only; only a warehouse that holds the person is copied, rewritten and swapped.

    Returns:
        Rows deleted per ``schema.table`` (only tables that had some).
    """
    if not paths.is_local or not Path(paths.warehouse).exists() or not subject.needles:
        return {}
    import duckdb

    from lake.warehouse import STORAGE_COMPATIBILITY, staged_warehouse

    con = duckdb.connect(paths.warehouse, read_only=True)
    try:
        if not _person_counts(con, subject):
            return {}
    finally:
        con.close()
    removed: dict[str, int] = {}
    with staged_warehouse(paths) as building:
        con = duckdb.connect(str(building))
        try:
            for schema, table, count, cond, params in _person_counts(con, subject):
                con.execute(f"DELETE FROM {_quote(schema)}.{_quote(table)} WHERE {cond}", params)
                removed[f"{schema}.{table}"] = count
            con.execute("CHECKPOINT")
        finally:
            con.close()
        if removed:
            _rebuild(building, STORAGE_COMPATIBILITY)
    return removed


def _rebuild(database: Path, storage_version: str) -> None:
    """Re-create ``database`` as a new file holding the same catalog and rows (no freed blocks)."""
    import duckdb

    fresh = database.with_name(database.name + ".fresh")
    for p in (fresh, fresh.with_name(fresh.name + ".wal")):
        p.unlink(missing_ok=True)
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH {_sql_string(str(database))} AS src (READ_ONLY)")
        con.execute(f"ATTACH {_sql_string(str(fresh))} AS dst (STORAGE_VERSION {_sql_string(storage_version)})")
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("DETACH src")
        con.execute("DETACH dst")
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    os.replace(fresh, database)


def _sql_string(value: str) -> str:
    # A path chosen by this process (ATTACH takes no parameters), quoted as a SQL string literal.
    return "'" + value.replace("'", "''") + "'"


# -- online store ------------------------------------------------------------------------------------


def erase_online_store(paths: LakePaths, subject: Subject) -> int:
    """Delete the person's rows from every table of the online store's SQLite file, then VACUUM.

    Returns:
        Rows deleted, summed over the tables.
    """
    try:
        path = Path(paths.online_store)
    except Exception:  # noqa: BLE001 - no online store configured for an object-store root
        return 0
    if not path.exists() or not subject.needles:
        return 0
    conn = sqlite3.connect(str(path), timeout=60, isolation_level=None)
    removed = 0
    try:
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
            ]
            for table in tables:
                cols = [r[1] for r in conn.execute(f"PRAGMA table_info({_quote(table)})")]
                if not cols:
                    continue
                cond = " OR ".join(f"instr(CAST({_quote(c)} AS TEXT), ?) > 0" for c in cols for _ in subject.needles)
                params = [n for _ in cols for n in subject.needles]
                before = conn.total_changes
                conn.execute(f"DELETE FROM {_quote(table)} WHERE {cond}", params)
                removed += conn.total_changes - before
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if removed:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return removed


# -- verification ------------------------------------------------------------------------------------


def leftover_files(paths: LakePaths, subject: Subject) -> list[str]:
    """Files outside ``delta/`` (landing included) whose bytes, or gunzipped bytes, still hold an id.

    Column-compressed formats (Parquet, DuckDB) are checked by the functions that rewrite them;
    this is the safety net for files nobody declared.
    """
    needles = [n.encode() for n in subject.needles]
    if not needles:
        return []
    root = Path(paths.root)
    found = []
    for folder, dirs, files in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if d != "delta"]
        for name in files:
            path = Path(folder, name)
            try:
                data = path.read_bytes()
                if name.endswith(".gz"):
                    data = gzip.decompress(data)
            except (OSError, EOFError, gzip.BadGzipFile):
                continue
            if any(n in data for n in needles):
                found.append(path.relative_to(root).as_posix())
    return sorted(found)

"""Everything outside the Delta tables and the landing zone: loose files, the warehouse, the online store.

The rules are the Delta tables' (:mod:`lake.erasure.delta_tables`): a row is the person's by the
most specific id it carries (``user_id``, else ``person_id``, else ``anonymous_id``), compared
whole; other text mentions them when one of their ids, or their email / phone (raw or hashed),
occurs as a whole token. Their rows are deleted, mentions in other rows replaced by ``"erased"``.

* **Parquet files** anywhere else under the root — batches a gate held (``audit/held/``), the
  simulator's truth and state (``simulator/``) — are rewritten without their rows, with mentions
  redacted in the others.
* **JSON files** (the GrowthBook flags documents under ``actuation/``, simulator summaries): a list
  element that is one of their ids is dropped, a key mentioning them dropped, other mentions
  replaced by ``"erased"``.
* **The warehouse** (``warehouse.duckdb``): in a private copy taken under the warehouse writer
  lock (:func:`lake.warehouse.staged_warehouse`), their rows are deleted from every base table and
  mentions redacted; the copy is then re-created as a fresh file (``COPY FROM DATABASE``), because
  DuckDB frees deleted rows' blocks without overwriting them, and swapped in atomically like a
  dbt build.
* **The online feature store** (SQLite): their rows are deleted from every table with
  ``secure_delete`` on, the write-ahead log is checkpointed and truncated, then ``VACUUM`` rewrites
  the file.

:func:`leftover_files` then reads every file outside ``delta/`` once more — landing lines by their
parsed ids, other files as raw bytes and decompressed gzip — and names those still holding them.
"""

from __future__ import annotations

import gzip
import os
import sqlite3
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lake.erasure.delta_tables import EVENT_COLUMNS, IDENTITY_COLUMNS, REDACTED, _masks, _redact
from lake.erasure.landing import landing_leftovers
from lake.erasure.subject import Subject
from lake.paths import LakePaths

if TYPE_CHECKING:
    from lake.contracts.plan import TrackingPlan

__all__ = ["erase_online_store", "erase_warehouse", "leftover_files", "scrub_loose_files", "scrub_loose_objects"]

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
    redact = pc.and_(mention, pc.invert(own))
    changed = int(pc.sum(pc.cast(pc.or_(own, mention), pa.int64())).as_py() or 0)
    if changed:
        codec = (
            meta.row_group(0).column(0).compression.lower() if meta.num_row_groups and meta.num_columns else "snappy"
        )
        keep = pc.invert(own)
        kept = _redact(table.filter(keep), pc.filter(redact, keep), subject)
        _atomic(path, lambda tmp: pq.write_table(kept, tmp, compression=codec if codec != "uncompressed" else "none"))
    return changed


def _scrub_json(value: Any, subject: Subject) -> Any:
    ids = subject.exact - subject.shared_devices
    if isinstance(value, dict):
        return {
            k: _scrub_json(v, subject)
            for k, v in value.items()
            if not (isinstance(k, str) and (k in ids or subject.mentioned_in(k)))
        }
    if isinstance(value, list):
        return [_scrub_json(v, subject) for v in value if not (isinstance(v, str) and v in ids)]
    if isinstance(value, str):
        return subject.redact(value, REDACTED)
    return value


def scrub_loose_files(paths: LakePaths, subject: Subject) -> dict[str, int]:
    """Rewrite the Parquet and JSON files outside ``delta/`` and ``landing/`` that hold the person.

    Returns:
        Rows removed or redacted (Parquet) or mentions scrubbed (JSON, counted as 1) per file,
        relative to the root.
    """
    out: dict[str, int] = {}
    needles = [n.encode() for n in sorted(subject.exact | set(subject.tokens))]
    for path in _walk(paths):
        rel = path.relative_to(paths.root).as_posix()
        if path.name.startswith(".") and ".erasing-" in path.name:
            continue
        if path.suffix == ".parquet":
            n = _scrub_parquet(path, subject)
            if n:
                out[rel] = n
        elif path.suffix == ".json" and subject.pattern is not None:
            raw = path.read_bytes()
            if not any(n in raw for n in needles):
                continue
            doc = orjson.loads(raw)
            scrubbed = _scrub_json(doc, subject)
            if scrubbed == doc:
                continue
            option = orjson.OPT_INDENT_2 if b"\n" in raw.strip() else 0
            new = orjson.dumps(scrubbed, option=option | orjson.OPT_SORT_KEYS)
            data = new + (b"\n" if raw.endswith(b"\n") else b"")
            _atomic(path, lambda tmp, data=data: tmp.write_bytes(data))
            out[rel] = 1
    return out


def _decide(
    rows: list[tuple], names: list[str], subject: Subject, *, editable: set[str]
) -> tuple[list[int], dict[int, dict[str, str]]]:
    """Of fetched rows (text columns as strings): the indices that are the person's, and per other row
    that mentions them the redacted values of its ``editable`` columns. A mention in a column that
    cannot be edited as text (a list, a struct, cast for the search) makes the row theirs."""
    table = pa.table({name: pa.array([r[j] for r in rows], pa.string()) for j, name in enumerate(names)})
    own, mention = _masks(table, subject)
    owned = set(pc.indices_nonzero(own).to_pylist())
    updates: dict[int, dict[str, str]] = {}
    for i in pc.indices_nonzero(pc.and_(mention, pc.invert(own))).to_pylist():
        changes = {}
        for j, name in enumerate(names):
            value = rows[i][j]
            if not isinstance(value, str) or name.lower() in IDENTITY_COLUMNS | EVENT_COLUMNS:
                continue
            new = subject.redact(value, REDACTED)
            if new != value:
                if name not in editable:
                    owned.add(i)
                    break
                changes[name] = new
        else:
            if changes:
                updates[i] = changes
    return sorted(owned), {i: c for i, c in updates.items() if i not in owned}


# -- warehouse ---------------------------------------------------------------------------------------


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _prefilter(subject: Subject) -> list[str]:
    # Rows can only be the person's, or mention them, if one of these occurs in their text.
    return sorted(subject.exact | set(subject.tokens))


def _warehouse_changes(con, subject: Subject) -> list[tuple[str, str, list[int], dict[int, dict[str, str]]]]:
    """(schema, table, rowids of their rows, rowid -> redacted columns) of every base table they are in."""
    out: list[tuple[str, str, list[int], dict[int, dict[str, str]]]] = []
    needles = _prefilter(subject)
    if not needles:
        return out
    tables = con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_catalog = current_database() ORDER BY 1, 2"
    ).fetchall()
    for schema, table in tables:
        cols = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? AND table_catalog = current_database() "
            "ORDER BY ordinal_position",
            [schema, table],
        ).fetchall()
        text = [c for c, t in cols if "VARCHAR" in t.upper() or "[]" in t or t.upper().startswith(("STRUCT", "MAP"))]
        if not text:
            continue
        editable = {c for c, t in cols if t.upper() == "VARCHAR"}
        # Identifiers come from DuckDB's own catalog; the ids are bound as parameters.
        cond = " OR ".join(f"contains(CAST({_quote(c)} AS VARCHAR), ?)" for c in text for _ in needles)
        params = [n for _ in text for n in needles]
        select = ", ".join(f"CAST({_quote(c)} AS VARCHAR)" for c in text)
        fetched = con.execute(
            f"SELECT rowid, {select} FROM {_quote(schema)}.{_quote(table)} WHERE {cond}", params
        ).fetchall()
        if not fetched:
            continue
        owned, updates = _decide([r[1:] for r in fetched], text, subject, editable=editable)
        rowids = [fetched[i][0] for i in owned]
        if rowids or updates:
            out.append((schema, table, rowids, {fetched[i][0]: c for i, c in updates.items()}))
    return out


def erase_warehouse(paths: LakePaths, subject: Subject) -> dict[str, int]:
    """Delete the person's rows from every base table of the warehouse, redact mentions, rebuild the file.

    Looks first, read-only; only a warehouse that holds the person is copied, rewritten and swapped.

    Returns:
        Rows deleted per ``schema.table``, and rows redacted per ``schema.table (redacted)`` (only
        tables that had some).
    """
    if not Path(paths.warehouse).exists() or not _prefilter(subject):  # local, for an object-store root too
        return {}
    import duckdb

    from lake.warehouse import STORAGE_COMPATIBILITY, staged_warehouse

    con = duckdb.connect(paths.warehouse, read_only=True)
    try:
        if not _warehouse_changes(con, subject):
            return {}
    finally:
        con.close()
    changed: dict[str, int] = {}
    with staged_warehouse(paths) as building:
        con = duckdb.connect(str(building))
        try:
            for schema, table, rowids, updates in _warehouse_changes(con, subject):
                name = f"{_quote(schema)}.{_quote(table)}"
                for rowid, values in updates.items():
                    for column, value in values.items():
                        con.execute(f"UPDATE {name} SET {_quote(column)} = ? WHERE rowid = ?", [value, rowid])
                if rowids:
                    con.execute(f"DELETE FROM {name} WHERE list_contains(?, rowid)", [rowids])
                    changed[f"{schema}.{table}"] = len(rowids)
                if updates:
                    changed[f"{schema}.{table} (redacted)"] = len(updates)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        if changed:
            _rebuild(building, STORAGE_COMPATIBILITY)
    return changed


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


def _online_key(conn, table: str, info: list[tuple]) -> list[str]:
    """The columns that identify a row: ``rowid``, or the primary key of a ``WITHOUT ROWID`` table."""
    try:
        conn.execute(f"SELECT rowid FROM {_quote(table)} LIMIT 0")
        return ["rowid"]
    except sqlite3.OperationalError:
        return [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5]]


def erase_online_store(paths: LakePaths, subject: Subject) -> int:
    """Delete the person's rows from every table of the online store's SQLite file (mentions in
    other rows redacted), then VACUUM.

    Returns:
        Rows deleted, summed over the tables.
    """
    try:
        path = Path(paths.online_store)
    except Exception:  # noqa: BLE001 - no online store configured for an object-store root
        return 0
    needles = _prefilter(subject)
    if not path.exists() or not needles:
        return 0
    conn = sqlite3.connect(str(path), timeout=60, isolation_level=None)
    removed = changed = 0
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
                info = list(conn.execute(f"PRAGMA table_info({_quote(table)})"))
                cols = [r[1] for r in info]
                key = _online_key(conn, table, info)
                if not cols or not key:
                    continue
                cond = " OR ".join(f"instr(CAST({_quote(c)} AS TEXT), ?) > 0" for c in cols for _ in needles)
                params = [n for _ in cols for n in needles]
                select = ", ".join(_quote(c) if c != "rowid" else "rowid" for c in key + cols)
                fetched = conn.execute(f"SELECT {select} FROM {_quote(table)} WHERE {cond}", params).fetchall()
                if not fetched:
                    continue
                text = [j for j, c in enumerate(cols) if all(r[len(key) + j] is None or isinstance(r[len(key) + j], str)
                                                              for r in fetched)]
                rows = [tuple(r[len(key) + j] for j in text) for r in fetched]
                names = [cols[j] for j in text]
                owned, updates = _decide(rows, names, subject, editable=set(names))
                where = " AND ".join(f"{_quote(k) if k != 'rowid' else 'rowid'} = ?" for k in key)
                for i in owned:
                    conn.execute(f"DELETE FROM {_quote(table)} WHERE {where}", list(fetched[i][: len(key)]))
                    removed += 1
                for i, values in updates.items():
                    sets = ", ".join(f"{_quote(c)} = ?" for c in values)
                    conn.execute(f"UPDATE {_quote(table)} SET {sets} WHERE {where}",
                                 [*values.values(), *fetched[i][: len(key)]])
                    changed += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if removed or changed:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return removed


# -- verification ------------------------------------------------------------------------------------


def leftover_files(paths: LakePaths, subject: Subject, *, plan: TrackingPlan) -> list[str]:
    """Files outside ``delta/`` that still hold the person: a landing file with a line of theirs (by
    its parsed ids), any other file whose bytes, or gunzipped bytes, hold one of their tokens.

    Column-compressed formats (Parquet, DuckDB) are checked by the functions that rewrite them;
    this is the safety net for files nobody declared. Their shared devices are not looked for:
    they are another person's device too.
    """
    found = landing_leftovers(paths, subject, plan=plan)
    pattern = subject.byte_pattern
    if pattern is None:
        return sorted(found)
    root = Path(paths.root)
    for folder, dirs, files in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if d not in ("delta", "landing")]
        for name in files:
            path = Path(folder, name)
            try:
                data = path.read_bytes()
                if name.endswith(".gz"):
                    data = gzip.decompress(data)
            except (OSError, EOFError, gzip.BadGzipFile):
                continue
            if pattern.search(data):
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def scrub_loose_objects(paths: LakePaths, subject: Subject, *, plan: TrackingPlan) -> tuple[dict[str, int], list[str]]:
    """An object-store root's loose files: those of the bucket outside ``delta/`` and ``landing/`` (copied
    to a temporary folder, scrubbed there by :func:`scrub_loose_files`, the changed ones PUT back whole)
    and those of its local folder (``GROWTHLAKE_LOCAL_DIR``: reports, dbt's logs), scrubbed in place.

    Returns:
        What :func:`scrub_loose_files` returns (bucket files relative to the root, local ones prefixed
        ``local:``), and what :func:`leftover_files` finds afterwards, the landing objects included.
    """
    import tempfile

    import pyarrow.fs as pafs

    fs, base = pafs.FileSystem.from_uri(paths.root)
    out: dict[str, int] = {}
    left: list[str] = []
    with tempfile.TemporaryDirectory(prefix="growthlake-erase-") as tmp:
        for info in fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True)):
            rel = info.path[len(base) + 1:]
            if info.type != pafs.FileType.File or rel.split("/", 1)[0] in _SKIP_TOP:
                continue
            local = Path(tmp, rel)
            local.parent.mkdir(parents=True, exist_ok=True)
            pafs.copy_files(info.path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        mirror = LakePaths.from_root(tmp)
        changed = scrub_loose_files(mirror, subject)
        for rel in changed:
            with fs.open_output_stream(f"{base}/{rel}") as sink:  # one PUT: the object is replaced whole
                sink.write(Path(tmp, rel).read_bytes())
        out.update(changed)
        left += leftover_files(mirror, subject, plan=plan)  # the mirror has no landing/: the bucket's below
    left += landing_leftovers(paths, subject, plan=plan)
    local_dir = LakePaths.from_root(paths.local_dir)
    out.update({f"local:{k}": v for k, v in scrub_loose_files(local_dir, subject).items()})
    left += [f"local:{f}" for f in leftover_files(local_dir, subject, plan=plan)]
    return out, sorted(left)
